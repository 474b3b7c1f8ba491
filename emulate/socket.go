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

// SocketInfo is what the supervisor needs to know about a target's socket.
type SocketInfo struct {
	Domain   int
	Type     int
	NonBlock bool
	Flags    int // F_GETFL, read for connection-mode sockets only
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
	if typ == unix.SOCK_STREAM || typ == unix.SOCK_SEQPACKET {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return info, 0, fmt.Errorf("fcntl F_GETFL: %w", err)
		}
		info.Flags = fl
		info.NonBlock = fl&unix.O_NONBLOCK != 0
	}
	return info, 0, nil
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

// ResolveUnspecified replaces an unspecified destination (0.0.0.0, ::,
// ::ffff:0.0.0.0) by the address the kernel really connects or sends to,
// so that a rule for 127.0.0.1 cannot be sidestepped by 0.0.0.0: IPv4 goes
// to the socket's own bound address, or loopback when unbound
// (ip_route_output_key_hash_rcu); IPv6 always goes to loopback
// (tcp_v6_connect, ip6_datagram_connect, udpv6_sendmsg).
func ResolveUnspecified(d *policy.Dest, fd int) {
	if !d.Addr.IsValid() || !d.Addr.Unmap().IsUnspecified() {
		return
	}
	mapped := d.Addr.Is4In6()
	if d.Addr.Is6() && !mapped {
		d.Addr = netip.IPv6Loopback()
		return
	}
	local := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	if sa, err := unix.Getsockname(fd); err == nil {
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			if ip := netip.AddrFrom4(a.Addr); !ip.IsUnspecified() {
				local = ip
			}
		case *unix.SockaddrInet6:
			if ip := netip.AddrFrom16(a.Addr).Unmap(); ip.Is4() && !ip.IsUnspecified() {
				local = ip
			}
		}
	}
	if mapped {
		d.Addr = netip.AddrFrom16(local.As16())
		return
	}
	d.Addr = local
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

// ConnectUnixRetrying connects a blocking UNIX stream or seqpacket socket
// the way its blocking connect would, waiting for room in the listener's
// backlog, but by retrying without blocking, so that it stops the moment
// the target gives up (gaveUp): natively an interrupted UNIX connect
// leaves the socket unconnected, and a connect the supervisor kept
// blocking would connect it later. The deadline is the socket's
// SO_SNDTIMEO (zero: none), whose expiry is EAGAIN as natively.
func ConnectUnixRetrying(fd int, sa *Sockaddr, flags int, deadline time.Time, gaveUp func() bool) syscall.Errno {
	wait := time.Millisecond
	for {
		errno := StartConnect(fd, sa, flags)
		if errno != syscall.EAGAIN {
			return errno
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return syscall.EAGAIN
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
		// Asked after the pause, right before trying again: a target that
		// gave up meanwhile must not find its socket connected.
		if gaveUp() {
			return syscall.EINTR
		}
	}
}
