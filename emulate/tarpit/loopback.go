package tarpit

import (
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
)

// loopback is the tarpit of one network namespace: its loopback
// listeners and sockets, one family each for IPv4 and IPv6.
type loopback struct {
	ns  *emulate.Netns // owned: kept open for setns until close
	raw bool           // privileged: raw sockets and a SYN capture

	mu     sync.Mutex
	fams   [2]*loopbackFamily // IPv4, IPv6; made on first use
	closed bool
}

// loopbackFamily is a listener that never answers, on 127.0.0.1 or [::1],
// a closed port beside it, and the raw sockets that speak for "the
// network" to held sockets. It owns every descriptor it holds (nil: none).
type loopbackFamily struct {
	v4      bool
	addr    netip.Addr
	ifindex int // loopback's

	// trap is the listener held connects go to: it drops every SYN.
	trap *listener
	port uint16 // trap's

	icmp *fd.FD // raw ICMP or ICMPv6 socket bound to addr; nil unprivileged
	tcp  *fd.FD // raw TCP socket bound to addr; nil unprivileged

	// closedPort is a port bound on addr where nobody listens: a SYN to
	// it is answered with a reset. closed keeps it bound for the
	// family's life, so nobody else can take it.
	closed     *fd.FD
	closedPort uint16

	// capture sees every SYN sent to the tarpit (nil unprivileged). It
	// stays open for the family's life: binding and closing a packet
	// socket each wait for an RCU grace period (synchronize_net), which
	// cost every held connect ~10 ms when each had a capture of its own.
	// SYNs read for other held connects wait in stash, keyed by their
	// source.
	capture *fd.FD
	capMu   sync.Mutex
	stash   map[sockAddr]capturedSYN
}

func (lo *loopback) close() {
	lo.mu.Lock()
	defer lo.mu.Unlock()
	for i, f := range lo.fams {
		if f != nil {
			f.close()
			lo.fams[i] = nil
		}
	}
	lo.ns.Close()
	lo.closed = true
}

func (f *loopbackFamily) close() {
	f.trap.close()
	f.icmp.Close()
	f.tcp.Close()
	f.capture.Close()
	f.closed.Close()
}

// prepare returns the family's tarpit, made on first use in the tarpit's
// network namespace (with, when privileged, the capture for the SYNs that
// will reach it).
func (lo *loopback) prepare(v4 bool) (*loopbackFamily, error) {
	lo.mu.Lock()
	defer lo.mu.Unlock()
	if lo.closed {
		return nil, errClosed
	}
	i := 1
	if v4 {
		i = 0
	}
	if f := lo.fams[i]; f != nil {
		return f, nil
	}
	var f *loopbackFamily
	err := lo.ns.Run(func() error {
		var err error
		f, err = newFamily(v4, lo.raw)
		return err
	})
	if err != nil {
		return nil, err
	}
	lo.fams[i] = f
	return f, nil
}

// newFamily makes a family's tarpit in the calling thread's network
// namespace.
func newFamily(v4, raw bool) (_ *loopbackFamily, err error) {
	f := &loopbackFamily{v4: v4, addr: loopbackAddr(v4)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.closed, err = loopbackSocket(v4, 0); err != nil {
		return nil, fmt.Errorf("closed-port socket: %w", err)
	}
	if f.ifindex, err = loopbackIndex(f.closed.Int()); err != nil {
		return nil, err
	}
	if err := unix.Bind(f.closed.Int(), f.sockaddr(0, false)); err != nil {
		return nil, fmt.Errorf("bind the closed port: %w", err)
	}
	if f.closedPort, err = localPort(f.closed.Int()); err != nil {
		return nil, err
	}
	// Privileged: every packet to the listener is dropped before TCP sees
	// it, so SYNs go unanswered and the RSTs the kernel sends in reply to
	// a kick are ignored. Unprivileged (where a socket filter may be
	// refused too), a full accept queue drops SYNs the same way.
	if raw {
		f.trap, err = newDropListener(v4)
	} else {
		f.trap, err = newFullListener(v4)
	}
	if err != nil {
		return nil, err
	}
	f.port = f.trap.port
	if !raw {
		return f, nil
	}

	// Raw sockets receive a copy of every ICMP or TCP packet of the
	// namespace; they only send, so they drop whatever they receive.
	domain, icmpProto := unix.AF_INET6, unix.IPPROTO_ICMPV6
	if v4 {
		domain, icmpProto = unix.AF_INET, unix.IPPROTO_ICMP
	}
	if f.icmp, err = f.rawSocket(domain, icmpProto); err != nil {
		return nil, fmt.Errorf("raw ICMP socket: %w", err)
	}
	if f.tcp, err = f.rawSocket(domain, unix.IPPROTO_TCP); err != nil {
		return nil, fmt.Errorf("raw TCP socket: %w", err)
	}
	if !v4 {
		// The kernel computes the TCP checksum at this offset.
		if err := unix.SetsockoptInt(f.tcp.Int(), unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, tcpChecksumOffset); err != nil {
			return nil, fmt.Errorf("raw TCP IPV6_CHECKSUM: %w", err)
		}
	}
	if f.capture, err = f.openCapture(); err != nil {
		return nil, err
	}
	f.stash = make(map[sockAddr]capturedSYN)
	return f, nil
}

// loopbackIndex returns the index of the loopback interface of the
// namespace socket sock lives in, ErrLoopbackDown when it is down.
func loopbackIndex(sock int) (int, error) {
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(sock, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0, fmt.Errorf("loopback flags: %w", err)
	}
	if ifr.Uint16()&unix.IFF_UP == 0 {
		return 0, ErrLoopbackDown
	}
	if err := unix.IoctlIfreq(sock, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("loopback index: %w", err)
	}
	return int(ifr.Uint32()), nil
}

// loopbackSocket opens a TCP socket to bind on the loopback address of
// its family; an IPv6 one is IPv6-only, so that it takes nothing of the
// IPv4 port space.
func loopbackSocket(v4 bool, flags int) (*fd.FD, error) {
	domain := unix.AF_INET6
	if v4 {
		domain = unix.AF_INET
	}
	n, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|flags, unix.IPPROTO_TCP)
	if err != nil {
		return nil, err
	}
	s := fd.New(n)
	defer s.Close()
	if !v4 {
		if err := unix.SetsockoptInt(s.Int(), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return nil, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	return s.Move(), nil
}

func localPort(sock int) (uint16, error) {
	sa, err := unix.Getsockname(sock)
	if err != nil {
		return 0, fmt.Errorf("tarpit getsockname: %w", err)
	}
	return sockAddrOf(sa).port, nil
}

// listener is a loopback listener that drops every SYN unanswered. It
// owns its descriptors; closing it makes its port a closed one.
type listener struct {
	fd     *fd.FD
	filler *fd.FD // the connection that keeps a full listener's queue full; nil with a drop filter
	port   uint16
}

// newDropListener makes a listener whose socket filter drops every
// packet before TCP sees it (privileged: the filter may be refused
// otherwise).
func newDropListener(v4 bool) (*listener, error) {
	return newLoopbackListener(v4, func(s int) error {
		if err := dropAll(s); err != nil {
			return fmt.Errorf("tarpit filter: %w", err)
		}
		return nil
	}, dropListenerBacklog)
}

// newFullListener makes a listener whose accept queue is full: backlog 0
// admits one connection, filler, which is never accepted; every later SYN
// is dropped unanswered (tcp_conn_request, LISTENOVERFLOWS). It needs no
// privileges.
func newFullListener(v4 bool) (_ *listener, err error) {
	l, err := newLoopbackListener(v4, nil, fullListenerBacklog)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	domain := unix.AF_INET6
	if v4 {
		domain = unix.AF_INET
	}
	n, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("tarpit filler socket: %w", err)
	}
	l.filler = fd.New(n)
	if err := unix.Connect(l.filler.Int(), loopbackSockaddr(v4, l.port)); err != nil && err != unix.EINPROGRESS {
		return nil, fmt.Errorf("fill the tarpit's queue: %w", err)
	}
	if err := waitConnected(l.filler.Int(), handshakeWait); err != nil {
		return nil, fmt.Errorf("fill the tarpit's queue: %w", err)
	}
	return l, nil
}

// newLoopbackListener binds a nonblocking listener on a free loopback
// port; setup, if any, runs between socket and bind.
func newLoopbackListener(v4 bool, setup func(sock int) error, backlog int) (_ *listener, err error) {
	l := &listener{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.fd, err = loopbackSocket(v4, unix.SOCK_NONBLOCK); err != nil {
		return nil, fmt.Errorf("tarpit socket: %w", err)
	}
	if setup != nil {
		if err := setup(l.fd.Int()); err != nil {
			return nil, err
		}
	}
	if err := unix.Bind(l.fd.Int(), loopbackSockaddr(v4, 0)); err != nil {
		return nil, fmt.Errorf("bind tarpit: %w", err)
	}
	if err := unix.Listen(l.fd.Int(), backlog); err != nil {
		return nil, fmt.Errorf("tarpit listen: %w", err)
	}
	if l.port, err = localPort(l.fd.Int()); err != nil {
		return nil, err
	}
	return l, nil
}

// close releases the listener; safe on nil and when closed already.
func (l *listener) close() {
	if l == nil {
		return
	}
	l.fd.Close()
	l.filler.Close()
}

func (f *loopbackFamily) rawSocket(domain, proto int) (*fd.FD, error) {
	n, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		return nil, err
	}
	s := fd.New(n)
	defer s.Close()
	if err := dropAll(s.Int()); err != nil {
		return nil, err
	}
	if err := unix.Bind(s.Int(), f.sockaddr(0, false)); err != nil {
		return nil, err
	}
	return s.Move(), nil
}

// dropAll attaches a socket filter that keeps no byte of any packet.
func dropAll(sock int) error {
	return emulate.AttachFilter(sock, []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}})
}

// loopbackAddr is the loopback address of a family.
func loopbackAddr(v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return netip.IPv6Loopback()
}

// loopbackSockaddr is the loopback address of a family, with port.
func loopbackSockaddr(v4 bool, port uint16) unix.Sockaddr {
	if v4 {
		return &unix.SockaddrInet4{Port: int(port), Addr: loopbackAddr(v4).As4()}
	}
	return &unix.SockaddrInet6{Port: int(port), Addr: loopbackAddr(v4).As16()}
}

// sockaddr is the tarpit's address; mapped gives the IPv4-mapped form for
// an IPv6 socket.
func (f *loopbackFamily) sockaddr(port uint16, mapped bool) unix.Sockaddr {
	if f.v4 && mapped {
		return &unix.SockaddrInet6{Port: int(port), Addr: netip.AddrFrom16(f.addr.As16()).As16()}
	}
	return f.sockaddrOf(f.addr, port)
}

// sockaddrOf is ip and port in the family's sockaddr form.
func (f *loopbackFamily) sockaddrOf(ip netip.Addr, port uint16) unix.Sockaddr {
	if f.v4 {
		return &unix.SockaddrInet4{Port: int(port), Addr: ip.As4()}
	}
	return &unix.SockaddrInet6{Port: int(port), Addr: ip.As16()}
}
