package emulate

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/policy"
)

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for one thread rather
// than a thread group, so a non-leader thread's tid can be opened.
const pidfdThread = unix.O_EXCL

// OpenThread returns a pidfd for thread tid. Falls back to the thread group
// when the kernel lacks PIDFD_THREAD (EINVAL), which works for leaders.
func OpenThread(tid int) (int, error) {
	fd, err := unix.PidfdOpen(tid, pidfdThread)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.PidfdOpen(tid, 0)
	}
	if errors.Is(err, unix.ESRCH) {
		return -1, ErrTargetGone
	}
	if err != nil {
		return -1, fmt.Errorf("pidfd_open(%d): %w", tid, err)
	}
	return fd, nil
}

// DupTargetFD duplicates the target's descriptor fd (the same open file, so
// a connect on the duplicate connects the target's socket). The errno is
// what the target's own call would fail with: EBADF for a descriptor it
// does not have.
func DupTargetFD(pidfd int, fd uint64) (int, syscall.Errno, error) {
	// The kernel takes the descriptor as an int.
	n := int32(uint32(fd))
	if n < 0 {
		return -1, syscall.EBADF, nil
	}
	dup, err := unix.PidfdGetfd(pidfd, int(n), 0)
	switch {
	case err == nil:
		return dup, 0, nil
	case errors.Is(err, unix.EBADF):
		return -1, syscall.EBADF, nil
	case errors.Is(err, unix.ESRCH):
		return -1, 0, ErrTargetGone
	default:
		return -1, 0, fmt.Errorf("pidfd_getfd(fd %d): %w", n, err)
	}
}

// FileID names an open file (a socket's inode) whatever descriptor
// number refers to it.
type FileID struct{ Dev, Ino uint64 }

// FileOf names the open file fd refers to; false when fstat fails.
func FileOf(fd int) (FileID, bool) {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return FileID{}, false
	}
	return FileID{st.Dev, st.Ino}, true
}

// TargetHolds reports whether thread tid still has descriptor fd open on
// the same socket as dup. When that cannot be told (other than because the
// thread or its descriptor is gone), it says true.
func TargetHolds(tid int, fd uint64, dup int) bool {
	pidfd, err := OpenThread(tid)
	if err != nil {
		return !errors.Is(err, ErrTargetGone)
	}
	defer unix.Close(pidfd)
	theirs, errno, err := DupTargetFD(pidfd, fd)
	if err != nil || errno != 0 {
		return err != nil && !errors.Is(err, ErrTargetGone)
	}
	defer unix.Close(theirs)
	a, ok1 := FileOf(theirs)
	b, ok2 := FileOf(dup)
	if !ok1 || !ok2 {
		return true
	}
	return a == b
}

// RefusedBeforeDestination is the errno the kernel gives a connect of an
// inet socket to sa whatever the address it names, or 0: a policy that
// denies the destination must not hide it.
//   - TCP: the socket's state (__inet_stream_connect: EISCONN when
//     connected or listening, EALREADY while a connect is under way).
//   - An IPV6_V6ONLY socket cannot go the IPv4 way: an AF_INET name is
//     EAFNOSUPPORT for UDP (__ip6_datagram_connect), an IPv4-mapped
//     address ENETUNREACH (tcp_v6_connect after the state, and UDP).
//
// Sends have SendRefused.
func RefusedBeforeDestination(fd int, info SocketInfo, sa *Sockaddr) syscall.Errno {
	if info.Domain != unix.AF_INET && info.Domain != unix.AF_INET6 {
		return 0
	}
	if info.Type == unix.SOCK_STREAM {
		st, err := TCPStateOf(fd)
		if err != nil {
			return 0
		}
		switch st {
		case TCPSynSent, TCPSynRecv:
			if info.NonBlock {
				return syscall.EALREADY
			}
		case TCPClose:
		default:
			return syscall.EISCONN
		}
	}
	if info.Domain == unix.AF_INET6 && sa.ipv4Way() {
		if only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil && only != 0 {
			if sa.Family() == unix.AF_INET {
				return syscall.EAFNOSUPPORT // TCP refused it before (TCPv6RefusesIPv4)
			}
			return syscall.ENETUNREACH
		}
	}
	return 0
}

// IsPathFD reports whether fd is an O_PATH descriptor, which pidfd_getfd
// copies but the socket calls refuse with EBADF.
func IsPathFD(fd int) bool {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_PATH != 0
}

// SocketInfo is what the supervisor needs to know about a target's socket.
type SocketInfo struct {
	Domain   int
	Type     int
	NonBlock bool
	Flags    int // F_GETFL, read for connection-mode sockets only
}

// connectionMode: a stream or seqpacket socket, whose connect makes a
// connection and so may wait for it.
func (info SocketInfo) connectionMode() bool {
	return info.Type == unix.SOCK_STREAM || info.Type == unix.SOCK_SEQPACKET
}

// ConnectBlocks reports whether a connect on the socket waits for its
// outcome: a connection-mode socket whose file blocks. SO_SNDTIMEO bounds
// only such a connect (sock_sndtimeo in __inet_stream_connect and
// unix_stream_connect).
func (info SocketInfo) ConnectBlocks() bool {
	return !info.NonBlock && info.connectionMode()
}

// Inspect reads the socket's domain, type and blocking mode. ENOTSOCK comes
// back as the errno for a descriptor that is not a socket.
func Inspect(fd int) (SocketInfo, syscall.Errno, error) {
	var info SocketInfo
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if errors.Is(err, unix.ENOTSOCK) {
		return info, syscall.ENOTSOCK, nil
	}
	if errors.Is(err, unix.EBADF) {
		// An O_PATH descriptor: pidfd_getfd copies it, but connect's
		// fdget refuses it.
		return info, syscall.EBADF, nil
	}
	if err != nil {
		return info, 0, fmt.Errorf("getsockopt SO_TYPE: %w", err)
	}
	info.Type = typ
	if info.Domain, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return info, 0, fmt.Errorf("getsockopt SO_DOMAIN: %w", err)
	}
	// Only a connection-mode socket's connect can block; a datagram
	// socket's never does, so its file flags need not be read.
	if info.connectionMode() {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return info, 0, fmt.Errorf("fcntl F_GETFL: %w", err)
		}
		info.Flags = fl
		info.NonBlock = fl&unix.O_NONBLOCK != 0
	}
	return info, 0, nil
}

// ReadFlags reads the file flags (F_GETFL) of fd, the socket info
// describes, when Inspect did not: a datagram socket's are read only once
// a send would block on it.
func (info *SocketInfo) ReadFlags(fd int) error {
	if info.Flags != 0 {
		return nil
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("fcntl F_GETFL: %w", err)
	}
	info.Flags, info.NonBlock = fl, fl&unix.O_NONBLOCK != 0
	return nil
}

// SendTimeout is the socket's SO_SNDTIMEO, or 0 when it has none (or it
// cannot be read). It bounds a blocking connect as well as a send.
func SendTimeout(fd int) time.Duration {
	tv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO_OLD)
	if err != nil {
		return 0
	}
	return time.Duration(tv.Sec)*time.Second + time.Duration(tv.Usec)*time.Microsecond
}

// SendBuffer is the socket's SO_SNDBUF: the doubled value the kernel
// reports, which is what it holds the send buffer to.
func SendBuffer(fd int) (int, error) {
	n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return 0, fmt.Errorf("getsockopt SO_SNDBUF: %w", err)
	}
	return n, nil
}

// Connect performs connect(2) on fd with the exact bytes of sa and returns
// the kernel's errno (0 on success). It may block when the socket blocks.
func Connect(fd int, sa *Sockaddr) syscall.Errno {
	var p unsafe.Pointer
	if sa.len > 0 {
		p = unsafe.Pointer(&sa.raw[0])
	}
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(p), uintptr(sa.len))
	return e
}

// SocketError reads and clears SO_ERROR, as a blocking connect does when
// it finishes.
func SocketError(fd int) (syscall.Errno, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return 0, fmt.Errorf("getsockopt SO_ERROR: %w", err)
	}
	return syscall.Errno(v), nil
}

// Use says what the kernel does with a destination: connect to it or send
// to it. They differ for "::" on an IPv6 socket.
type Use int

const (
	// UseConnect: connect(2), and TCP fast open's implicit connect.
	UseConnect Use = iota
	// UseSend: a datagram's destination (sendto, sendmsg, sendmmsg).
	UseSend
)

// ResolveName replaces an unspecified destination in d (0.0.0.0, ::,
// ::ffff:0.0.0.0) by the address the kernel really reaches, so that a
// rule for 127.0.0.1 cannot be sidestepped by 0.0.0.0, and returns sa
// with that address written in (sa itself when nothing changed; the zero
// Sockaddr when sa is nil). Perform the call with the returned name: the
// kernel reads the socket's bound address when it connects, and another
// thread of the target may bind the socket between the decision and the
// call, which would move an unspecified destination somewhere else.
//
// Where the kernel goes (Linux 6.18):
//   - IPv4 0.0.0.0, and ::ffff:0.0.0.0 on an IPv6 socket (both take the
//     IPv4 path): the socket's IPv4 source, else 127.0.0.1
//     (__ip_route_output_key: daddr = saddr, or loopback). The IPv4
//     source of an IPv6 socket bound to a real IPv6 address is
//     127.0.0.6 (LOOPBACK4_IPV6, __inet6_bind).
//   - :: on an IPv6 socket: a connect goes to 127.0.0.1 (as
//     ::ffff:127.0.0.1) when the socket is bound to an IPv4-mapped
//     address, else to ::1 (tcp_v6_connect, __ip6_datagram_connect); a
//     send always goes to ::1 (udpv6_sendmsg, rawv6_sendmsg).
func ResolveName(d *policy.Dest, sa *Sockaddr, fd int, use Use) Sockaddr {
	var out Sockaddr
	if sa != nil {
		out = *sa
	}
	if !d.Addr.IsValid() || !d.Addr.Unmap().IsUnspecified() {
		return out
	}
	mapped := d.Addr.Is4In6()
	bound := boundAddr(fd)
	switch {
	case d.Addr.Is6() && !mapped:
		if use == UseConnect && bound.Is4In6() {
			d.Addr = netip.AddrFrom16(loopback4.As16())
		} else {
			d.Addr = netip.IPv6Loopback()
		}
	case mapped:
		d.Addr = netip.AddrFrom16(ipv4Source(bound).As16())
	default:
		d.Addr = ipv4Source(bound)
	}
	if sa != nil {
		out.setAddr(d.Addr)
	}
	return out
}

var loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// loopback4IPv6 is LOOPBACK4_IPV6, the IPv4 source of an IPv6 socket
// bound to a real IPv6 address.
var loopback4IPv6 = netip.AddrFrom4([4]byte{127, 0, 0, 6})

// boundAddr is the socket's bound address (unspecified when unbound or
// unreadable), IPv6 as the kernel keeps it.
func boundAddr(fd int) netip.Addr {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr)
	}
	return netip.IPv4Unspecified()
}

// ipv4Source is where the kernel sends an IPv4 packet for 0.0.0.0 from a
// socket bound to bound: the socket's IPv4 source address, or loopback.
func ipv4Source(bound netip.Addr) netip.Addr {
	switch {
	case bound.Is4In6() && !bound.Unmap().IsUnspecified():
		return bound.Unmap()
	case bound.Is6() && !bound.Is4In6() && !bound.IsUnspecified():
		return loopback4IPv6
	case bound.Is4() && !bound.IsUnspecified():
		return bound
	}
	return loopback4
}

// setAddr writes a into the address bytes of an AF_INET or AF_INET6 name
// (or an AF_UNSPEC name the kernel reads as IPv4), keeping its family,
// port, flow label and scope.
func (s *Sockaddr) setAddr(a netip.Addr) {
	switch {
	case s.len >= sockaddrIn6MinLen && s.Family() == syscall.AF_INET6:
		b := a.As16()
		copy(s.raw[8:24], b[:])
	case s.len >= sockaddrInLen && a.Is4():
		b := a.As4()
		copy(s.raw[4:8], b[:])
	}
}

// StartConnect begins the connect of a blocking inet stream socket without
// blocking: O_NONBLOCK is set on the shared open file for the one call and
// cleared right after, so the supervisor waits for the handshake with
// epoll instead of a thread per connect. While the flag is set, the socket
// is unconnected, so the target's other threads could only notice it
// through F_GETFL. It returns the kernel's errno (EINPROGRESS while the
// handshake goes on). flags is the file's F_GETFL value.
func StartConnect(fd int, sa *Sockaddr, flags int) syscall.Errno {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_NONBLOCK); err != nil {
		return syscall.EAGAIN
	}
	errno := Connect(fd, sa)
	unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags)
	return errno
}

// FinishConnect is the last step of a blocking connect once the socket
// polls writable: the kernel's own connect on an established (or failed)
// socket returns 0 and marks it connected, or returns and clears the
// error, as the blocking call does natively when it wakes. It never
// blocks: were the handshake still under way, it says EALREADY.
func FinishConnect(fd int, sa *Sockaddr, flags int) syscall.Errno {
	return StartConnect(fd, sa, flags)
}

// Writable reports whether fd polls writable (or in error) right now.
func Writable(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(p, 0)
	return err == nil && n == 1 && p[0].Revents != 0
}

// A UNIX connect waiting for backlog room retries after unixRetryFirst,
// doubling up to unixRetryMax: a listener that accepts at once is joined
// within a millisecond, and one that is stuck costs twenty tries a second.
const (
	unixRetryFirst = time.Millisecond
	unixRetryMax   = 50 * time.Millisecond
)

// ConnectUnixRetrying connects a blocking UNIX stream or seqpacket socket
// the way its blocking connect would, waiting for room in the listener's
// backlog, but by retrying without blocking, so that it stops the moment
// the target gives up (gaveUp): natively an interrupted UNIX connect
// leaves the socket unconnected, and a connect the supervisor kept
// blocking would connect it later. The deadline is the socket's
// SO_SNDTIMEO (zero: none), whose expiry is EAGAIN as natively.
func ConnectUnixRetrying(fd int, sa *Sockaddr, flags int, deadline time.Time, gaveUp func() bool) syscall.Errno {
	wait := unixRetryFirst
	for {
		errno := StartConnect(fd, sa, flags)
		if errno != syscall.EAGAIN {
			return errno
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return syscall.EAGAIN
		}
		time.Sleep(wait)
		wait = min(2*wait, unixRetryMax)
		// Asked after the pause, right before trying again: a target that
		// gave up meanwhile must not find its socket connected.
		if gaveUp() {
			return syscall.EINTR
		}
	}
}
