package emulate

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/fd"
)

// NetnsID names a network namespace by its nsfs inode; equal IDs are the
// same namespace.
type NetnsID struct{ dev, ino uint64 }

// Netns is a network namespace to run code in: the caller's own, or the
// one a socket lives in, held open by an nsfs descriptor until Close (a
// namespace lives as long as a descriptor names it).
type Netns struct {
	id  NetnsID
	own bool   // the caller's namespace: Run needs no setns
	fd  *fd.FD // nsfs descriptor, for setns; nil when own
}

// OwnNetns is the calling thread's network namespace.
func OwnNetns() (*Netns, error) {
	const path = "/proc/thread-self/ns/net"
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return &Netns{id: NetnsID{st.Dev, st.Ino}, own: true}, nil
}

// SocketNetns returns the network namespace socket sock lives in; own is
// the caller's (OwnNetns), which needs no descriptor. SIOCGSKNS (Linux
// 4.9) needs CAP_NET_ADMIN: without it the error wraps EPERM.
func SocketNetns(sock int, own *Netns) (*Netns, error) {
	n, err := unix.IoctlRetInt(sock, unix.SIOCGSKNS)
	if err != nil {
		return nil, fmt.Errorf("ioctl SIOCGSKNS: %w", err)
	}
	nsfd := fd.New(n)
	defer nsfd.Close()
	var st unix.Stat_t
	if err := unix.Fstat(nsfd.Int(), &st); err != nil {
		return nil, fmt.Errorf("fstat network namespace: %w", err)
	}
	id := NetnsID{st.Dev, st.Ino}
	if id == own.id {
		return own, nil
	}
	return &Netns{id: id, fd: nsfd.Move()}, nil
}

// ID names the namespace.
func (n *Netns) ID() NetnsID { return n.id }

// Own reports whether this is the caller's own namespace.
func (n *Netns) Own() bool { return n.own }

// Run runs fn in the namespace: directly when it is the caller's own,
// else on a locked OS thread that enters it (CAP_SYS_ADMIN) and is thrown
// away after. Sockets keep the namespace they were made in, so those fn
// makes may be used from any thread afterwards.
func (n *Netns) Run(fn func() error) error {
	if n.own {
		return fn()
	}
	if !n.fd.Valid() {
		return errors.New("network namespace closed")
	}
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine, taking
		// its namespace with it.
		runtime.LockOSThread()
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic in the socket's network namespace: %v\n%s", r, debug.Stack())
			}
		}()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Setns(n.fd.Int(), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter the socket's network namespace: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// Close lets the namespace go (it ends once nothing else uses it);
// idempotent, and a no-op on the caller's own.
func (n *Netns) Close() { n.fd.Close() }

// InNetnsOf runs fn in the network namespace of socket sock (a
// duplicate of a target's): directly when it is the supervisor's own,
// else on a thread that enters it (CAP_SYS_ADMIN). Sockets made by fn keep
// that namespace when used from any thread afterwards.
func InNetnsOf(sock int, fn func() error) error {
	own, err := OwnNetns()
	if err != nil {
		return err
	}
	ns, err := SocketNetns(sock, own)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Run(fn)
}

// AttachFilter attaches a classic BPF program to socket fd.
func AttachFilter(fd int, prog []unix.SockFilter) error {
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
}
