package tarpit

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
)

// ErrNotAsync is returned by HeldConnect.Fail for an errno that no network
// event delivers to a connect in progress; the caller answers it
// synchronously instead. Set.FailsAsync tells beforehand.
var ErrNotAsync = errors.New("errno cannot be delivered asynchronously to a connect in progress")

// ErrLoopbackDown is returned by Hold when the loopback interface of the
// socket's network namespace is down, so no tarpit can exist there.
var ErrLoopbackDown = errors.New("loopback interface is down in the socket's network namespace")

// ErrNotInProgress is returned by Fail when the connect is no longer in
// progress (the program shut the socket down or disconnected it).
var ErrNotInProgress = errors.New("connect is no longer in progress")

// ErrOtherNetns is returned by Hold when the socket lives in another
// network namespace than the supervisor's and the supervisor lacks the
// privileges to enter it.
var ErrOtherNetns = errors.New("the socket lives in another network namespace, which only a privileged supervisor can enter")

// errClosed is returned once the set is closed.
var errClosed = errors.New("tarpits closed")

// Set owns the tarpits, one per network namespace, each shared by every
// held connect in that namespace. The supervisor creates one and closes it
// at the end. A tarpit keeps its network namespace alive until Close.
type Set struct {
	mu     sync.Mutex
	self   *emulate.Netns // the supervisor's network namespace
	cookie uint64         // SO_NETNS_COOKIE of the supervisor's namespace; 0: unknown
	raw    bool           // raw and packet sockets can be made
	byNS   map[emulate.NetnsID]*loopback
	closed bool
}

// New returns an empty set; tarpits are made on first use. Whether they
// are privileged is probed here, once.
func New() (*Set, error) {
	self, err := emulate.OwnNetns()
	if err != nil {
		return nil, err
	}
	t := &Set{self: self, byNS: make(map[emulate.NetnsID]*loopback), raw: canRaw()}
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
		defer unix.Close(fd)
		t.cookie, _ = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	}
	return t, nil
}

// canRaw reports whether this process may open raw IP and packet sockets,
// which the privileged tarpit needs.
func canRaw() bool {
	for _, s := range [][3]int{
		{unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP},
		{unix.AF_PACKET, unix.SOCK_DGRAM, 0},
	} {
		fd, err := unix.Socket(s[0], s[1]|unix.SOCK_CLOEXEC, s[2])
		if err != nil {
			return false
		}
		unix.Close(fd)
	}
	return true
}

// Privileged reports whether the tarpits can speak for the network with
// raw sockets (CAP_NET_RAW) and enter other network namespaces
// (CAP_NET_ADMIN, CAP_SYS_ADMIN): every ICMP errno asynchronously, and
// any delay exactly.
func (t *Set) Privileged() bool { return t.raw }

// Close closes every tarpit. Connects still held stay in progress (their
// SYNs go unanswered, as toward a host that drops them), until the kernel
// gives up after the SYN retries, as it would natively.
func (t *Set) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, lo := range t.byNS {
		lo.close()
		delete(t.byNS, k)
	}
	t.closed = true
}

// Hold connects dup, a duplicate of the program's nonblocking TCP socket,
// to the tarpit of the socket's network namespace, so that the program's
// connect stays in progress (SYN_SENT) with nothing answering and without
// any packet leaving the loopback interface. family is the destination's
// family; mappedV4 says an AF_INET6 socket connects to an IPv4-mapped
// address. The caller answers the program's connect with EINPROGRESS.
//
// The one difference a program can observe is the socket's local address
// (getsockname): a loopback address rather than the one the route to the
// real destination would pick, unless the program had bound the socket
// (after ECONNRESET, tcp_disconnect clears an address it had not bound).
func (t *Set) Hold(dup int, family int, mappedV4 bool) (*HeldConnect, error) {
	return t.hold(dup, family, mappedV4, false)
}

// HoldRefusable is Hold for a connect that Fail will refuse
// (ECONNREFUSED) after a delay. Unprivileged tarpits hold it on a
// listener of its own, closed at Fail, so that the next SYN
// retransmission is refused.
func (t *Set) HoldRefusable(dup int, family int, mappedV4 bool) (*HeldConnect, error) {
	return t.hold(dup, family, mappedV4, !t.raw)
}

// Refuse starts the connect of dup, a duplicate of the program's
// nonblocking TCP socket, toward a loopback port of the supervisor's that
// nobody listens on: the connect returns EINPROGRESS and the kernel's own
// reset fails it at once, so poll and SO_ERROR show ECONNREFUSED as for a
// real refusal. It needs no privileges. The caller answers EINPROGRESS.
func (t *Set) Refuse(dup int, family int, mappedV4 bool) error {
	fam, err := t.familyFor(dup, family, mappedV4)
	if err != nil {
		return err
	}
	if err := connectInProgress(dup, fam.sockaddr(fam.closedPort, family == unix.AF_INET6)); err != nil {
		return fmt.Errorf("connect to a closed port: %w", err)
	}
	return nil
}

func (t *Set) hold(dup int, family int, mappedV4 bool, private bool) (_ *HeldConnect, err error) {
	fam, err := t.familyFor(dup, family, mappedV4)
	if err != nil {
		return nil, err
	}
	h := &HeldConnect{dup: dup, v4: fam.v4, fam: fam, capturing: fam.capture.Valid()}
	defer func() {
		if err != nil {
			h.Close() // what it holds so far; dup stays the caller's
		}
	}()
	if h.userTimeout, err = unix.GetsockoptInt(dup, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); err != nil {
		return nil, fmt.Errorf("getsockopt TCP_USER_TIMEOUT: %w", err)
	}
	port := fam.port
	if private {
		// Made in the supervisor's namespace: unprivileged tarpits
		// exist only there (loopbackFor checked the socket lives there).
		if h.private, err = newFullListener(fam.v4); err != nil {
			return nil, err
		}
		port = h.private.port
	}
	h.sentAt = time.Now()
	if err := connectInProgress(dup, fam.sockaddr(port, family == unix.AF_INET6)); err != nil {
		return nil, fmt.Errorf("connect to the tarpit: %w", err)
	}
	local, err := unix.Getsockname(dup)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	h.local = sockAddrOf(local)
	// The SYN went through the loopback device during connect; it is
	// normally in the capture's queue already.
	if err := h.readSYN(synCaptureWait); err != nil && !errors.Is(err, errNoSYNYet) {
		h.closeCapture() // ICMP errnos will be unavailable; the hold stands
	}
	return h, nil
}

// connectInProgress starts a nonblocking connect of fd to sa, toward a
// tarpit that cannot complete it at once.
func connectInProgress(fd int, sa unix.Sockaddr) error {
	switch err := unix.Connect(fd, sa); err {
	case unix.EINPROGRESS:
		return nil
	case nil:
		// Cannot happen toward a listener that drops SYNs or a
		// closed port.
		return errors.New("connect completed")
	default:
		return err
	}
}

// familyFor checks that dup can be held and returns the tarpit family its
// connect to a destination of family (mappedV4: IPv4-mapped) goes to,
// making it on first use.
func (t *Set) familyFor(dup int, family int, mappedV4 bool) (*loopbackFamily, error) {
	if err := checkHoldable(dup, family, mappedV4); err != nil {
		return nil, err
	}
	lo, err := t.loopbackFor(dup)
	if err != nil {
		return nil, err
	}
	return lo.prepare(family == unix.AF_INET || mappedV4)
}

func checkHoldable(dup int, family int, mappedV4 bool) error {
	info, errno, err := emulate.Inspect(dup)
	if err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("hold a connect: %w", errno)
	}
	proto, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return fmt.Errorf("hold a connect: getsockopt SO_PROTOCOL: %w", err)
	}
	if info.Type != unix.SOCK_STREAM || proto != unix.IPPROTO_TCP {
		return errors.New("hold a connect: not a TCP socket")
	}
	if !info.NonBlock {
		return errors.New("hold a connect: the socket blocks")
	}
	switch {
	case family == unix.AF_INET && info.Domain == unix.AF_INET && !mappedV4:
	case family == unix.AF_INET6 && info.Domain == unix.AF_INET6:
	default:
		return fmt.Errorf("hold a connect: family %d (mapped %v) on a socket of domain %d", family, mappedV4, info.Domain)
	}
	return nil
}

// loopbackFor returns the tarpit of the network namespace dup's socket
// lives in.
func (t *Set) loopbackFor(dup int) (*loopback, error) {
	ns, err := emulate.SocketNetns(dup, t.self)
	if errors.Is(err, unix.EPERM) {
		// Unprivileged: only the supervisor's own namespace is usable.
		return t.ownLoopback(dup)
	}
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lo := t.byNS[ns.ID()]
	switch {
	case t.closed:
		ns.Close()
		return nil, errClosed
	case lo != nil:
		ns.Close() // the tarpit there holds it already
		return lo, nil
	}
	lo = &loopback{ns: ns, raw: t.raw}
	t.byNS[ns.ID()] = lo
	return lo, nil
}

// ownLoopback returns the tarpit of the supervisor's network namespace
// when dup's socket lives there (same SO_NETNS_COOKIE), ErrOtherNetns when
// it does not or cannot be told.
func (t *Set) ownLoopback(dup int) (*loopback, error) {
	c, err := unix.GetsockoptUint64(dup, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil || t.cookie == 0 || c != t.cookie {
		return nil, ErrOtherNetns
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errClosed
	}
	if lo := t.byNS[t.self.ID()]; lo != nil {
		return lo, nil
	}
	lo := &loopback{ns: t.self, raw: t.raw}
	t.byNS[t.self.ID()] = lo
	return lo, nil
}
