package emulate

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
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
	Protocol int
	NonBlock bool
}

// Inspect reads the socket's domain, type and blocking mode. ENOTSOCK comes
// back as the errno for a descriptor that is not a socket.
func Inspect(fd int) (SocketInfo, syscall.Errno, error) {
	var info SocketInfo
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if errors.Is(err, unix.ENOTSOCK) {
		return info, syscall.ENOTSOCK, nil
	}
	if err != nil {
		return info, 0, fmt.Errorf("getsockopt SO_TYPE: %w", err)
	}
	info.Type = typ
	if info.Domain, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return info, 0, fmt.Errorf("getsockopt SO_DOMAIN: %w", err)
	}
	if info.Protocol, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil {
		return info, 0, fmt.Errorf("getsockopt SO_PROTOCOL: %w", err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return info, 0, fmt.Errorf("fcntl F_GETFL: %w", err)
	}
	info.NonBlock = fl&unix.O_NONBLOCK != 0
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
