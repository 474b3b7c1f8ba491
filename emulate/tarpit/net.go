package tarpit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
)

// tarpit is the loopback machinery of one network namespace.
type tarpit struct {
	ns  *emulate.Netns // kept open for setns until close
	raw bool           // privileged: raw sockets and a SYN capture

	mu     sync.Mutex
	fams   [2]*tarpitFamily // IPv4, IPv6; made on first use
	closed bool
}

// tarpitFamily is a listener that drops every packet, on 127.0.0.1 or
// [::1], and the raw sockets that speak for "the network" to held sockets.
type tarpitFamily struct {
	v4      bool
	addr    netip.Addr
	port    uint16
	ifindex int // loopback's
	listen  int
	filler  int // a connection that keeps listen's queue full; -1 with a drop filter
	icmp    int // raw ICMP or ICMPv6 socket bound to addr; -1 unprivileged
	tcp     int // raw TCP socket bound to addr; -1 unprivileged

	// closedPort is a port bound on addr where nobody listens: a SYN to
	// it is answered with a reset. closed keeps it bound for the
	// family's life, so nobody else can take it.
	closed     int
	closedPort uint16

	// capture sees every SYN sent to the tarpit. It stays open for the
	// family's life: binding and closing a packet socket each wait for an
	// RCU grace period (synchronize_net), which cost every held connect
	// ~10 ms when each had a capture of its own. SYNs read for other held
	// connects wait in stash, keyed by their source.
	capture int
	capMu   sync.Mutex
	stash   map[sockAddr]capturedSYN
}

// capturedSYN is what an ICMP error must quote from a SYN, and its ISN.
type capturedSYN struct {
	quote []byte
	isn   uint32
}

// maxStash bounds the SYNs kept for held connects that never asked.
const maxStash = 4096

// tarpitFor returns the tarpit of the network namespace dup's socket lives in.
func (t *Set) tarpitFor(dup int) (*tarpit, error) {
	ns, err := emulate.SocketNetns(dup, t.self)
	if errors.Is(err, unix.EPERM) {
		// Unprivileged: only the supervisor's own namespace is usable.
		return t.ownTarpit(dup)
	}
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		ns.Close()
		return nil, errors.New("tarpits closed")
	}
	if tp := t.byNS[ns.ID()]; tp != nil {
		ns.Close()
		return tp, nil
	}
	tp := &tarpit{ns: ns, raw: t.raw}
	t.byNS[ns.ID()] = tp
	return tp, nil
}

// ownTarpit returns the tarpit of the supervisor's network namespace when
// dup's socket lives there (same SO_NETNS_COOKIE), ErrOtherNetns when it
// does not or cannot be told.
func (t *Set) ownTarpit(dup int) (*tarpit, error) {
	c, err := unix.GetsockoptUint64(dup, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil || t.cookie == 0 || c != t.cookie {
		return nil, ErrOtherNetns
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("tarpits closed")
	}
	if tp := t.byNS[t.self.ID()]; tp != nil {
		return tp, nil
	}
	tp := &tarpit{ns: t.self, raw: t.raw}
	t.byNS[t.self.ID()] = tp
	return tp, nil
}

func (tp *tarpit) close() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for i, f := range tp.fams {
		if f != nil {
			f.close()
			tp.fams[i] = nil
		}
	}
	tp.ns.Close()
	tp.closed = true
}

func (f *tarpitFamily) close() {
	for _, fd := range []*int{&f.listen, &f.filler, &f.icmp, &f.tcp, &f.capture, &f.closed} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// prepare makes the family's tarpit if needed and opens a capture for the
// SYNs that will reach it, both in the tarpit's network namespace.
func (tp *tarpit) prepare(v4 bool) (*tarpitFamily, int, error) {
	raw := tp.raw
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.closed {
		return nil, -1, errors.New("tarpits closed")
	}
	i := 1
	if v4 {
		i = 0
	}
	f := tp.fams[i]
	if f != nil {
		return f, f.capture, nil
	}
	err := tp.ns.Run(func() error {
		var err error
		if f, err = newTarpitFamily(v4, raw); err != nil {
			return err
		}
		if !raw {
			return nil
		}
		if f.capture, err = f.openCapture(); err != nil {
			f.close()
			f = nil
			return err
		}
		return nil
	})
	if err != nil {
		return nil, -1, err
	}
	f.stash = make(map[sockAddr]capturedSYN)
	tp.fams[i] = f
	return f, f.capture, nil
}

func newTarpitFamily(v4, raw bool) (*tarpitFamily, error) {
	f := &tarpitFamily{v4: v4, listen: -1, filler: -1, icmp: -1, tcp: -1, capture: -1, closed: -1}
	domain, icmpProto := unix.AF_INET6, unix.IPPROTO_ICMPV6
	f.addr = netip.IPv6Loopback()
	if v4 {
		domain, icmpProto = unix.AF_INET, unix.IPPROTO_ICMP
		f.addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	var err error
	if f.listen, err = unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP); err != nil {
		return nil, fmt.Errorf("tarpit socket: %w", err)
	}
	fail := func(err error) (*tarpitFamily, error) {
		f.close()
		return nil, err
	}
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fail(err)
	}
	if err := unix.IoctlIfreq(f.listen, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fail(fmt.Errorf("loopback flags: %w", err))
	}
	if ifr.Uint16()&unix.IFF_UP == 0 {
		return fail(ErrLoopbackDown)
	}
	if err := unix.IoctlIfreq(f.listen, unix.SIOCGIFINDEX, ifr); err != nil {
		return fail(fmt.Errorf("loopback index: %w", err))
	}
	f.ifindex = int(ifr.Uint32())
	if !v4 {
		if err := unix.SetsockoptInt(f.listen, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail(fmt.Errorf("tarpit IPV6_V6ONLY: %w", err))
		}
	}
	// Privileged: every packet to the listener is dropped before TCP sees
	// it, so SYNs go unanswered and the RSTs the kernel sends in reply to
	// a kick are ignored. Unprivileged (where a socket filter may be
	// refused too), a full accept queue drops SYNs the same way.
	if raw {
		if err := dropAll(f.listen); err != nil {
			return fail(fmt.Errorf("tarpit filter: %w", err))
		}
		if err := bindListen(f.listen, f.sockaddr(0, false), 1); err != nil {
			return fail(err)
		}
		if f.port, err = localPort(f.listen); err != nil {
			return fail(err)
		}
	} else {
		unix.Close(f.listen)
		f.listen = -1
		full, err := newFullListener(v4)
		if err != nil {
			return fail(err)
		}
		f.listen, f.filler, f.port = full.listen, full.filler, full.port
	}
	if f.closed, err = unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP); err != nil {
		return fail(fmt.Errorf("closed-port socket: %w", err))
	}
	if !v4 {
		if err := unix.SetsockoptInt(f.closed, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail(fmt.Errorf("closed-port IPV6_V6ONLY: %w", err))
		}
	}
	if err := unix.Bind(f.closed, f.sockaddr(0, false)); err != nil {
		return fail(fmt.Errorf("bind the closed port: %w", err))
	}
	if f.closedPort, err = localPort(f.closed); err != nil {
		return fail(err)
	}
	if !raw {
		return f, nil
	}

	// Raw sockets receive a copy of every ICMP or TCP packet of the
	// namespace; they only send, so they drop whatever they receive.
	if f.icmp, err = rawSocket(domain, icmpProto, f); err != nil {
		return fail(fmt.Errorf("raw ICMP socket: %w", err))
	}
	if f.tcp, err = rawSocket(domain, unix.IPPROTO_TCP, f); err != nil {
		return fail(fmt.Errorf("raw TCP socket: %w", err))
	}
	if !v4 {
		// The kernel computes the TCP checksum at this offset.
		if err := unix.SetsockoptInt(f.tcp, unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, 16); err != nil {
			return fail(fmt.Errorf("raw TCP IPV6_CHECKSUM: %w", err))
		}
	}
	return f, nil
}

func bindListen(fd int, sa unix.Sockaddr, backlog int) error {
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind tarpit: %w", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fmt.Errorf("tarpit listen: %w", err)
	}
	return nil
}

func localPort(fd int) (uint16, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, fmt.Errorf("tarpit getsockname: %w", err)
	}
	return sockAddrOf(sa).port, nil
}

// fullListener is a loopback listener whose accept queue is full: backlog
// 0 admits one connection (sk_acceptq_is_full compares with >), filler,
// which is never accepted; every later SYN is dropped unanswered. It
// needs no privileges. Closing it makes its port a closed one.
type fullListener struct {
	listen, filler int
	port           uint16
}

func newFullListener(v4 bool) (*fullListener, error) {
	domain := unix.AF_INET6
	var addr unix.Sockaddr = &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16()}
	if v4 {
		domain = unix.AF_INET
		addr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	}
	l := &fullListener{listen: -1, filler: -1}
	fail := func(err error) (*fullListener, error) {
		l.close()
		return nil, err
	}
	var err error
	if l.listen, err = unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP); err != nil {
		return fail(fmt.Errorf("tarpit socket: %w", err))
	}
	if !v4 {
		if err := unix.SetsockoptInt(l.listen, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail(fmt.Errorf("tarpit IPV6_V6ONLY: %w", err))
		}
	}
	if err := bindListen(l.listen, addr, 0); err != nil {
		return fail(err)
	}
	if l.port, err = localPort(l.listen); err != nil {
		return fail(err)
	}
	if l.filler, err = unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP); err != nil {
		return fail(fmt.Errorf("tarpit filler socket: %w", err))
	}
	switch a := addr.(type) {
	case *unix.SockaddrInet4:
		a.Port = int(l.port)
	case *unix.SockaddrInet6:
		a.Port = int(l.port)
	}
	if err := unix.Connect(l.filler, addr); err != nil && err != unix.EINPROGRESS {
		return fail(fmt.Errorf("fill the tarpit's queue: %w", err))
	}
	// The loopback handshake completes within connect, or within a
	// softirq right after it.
	if err := waitConnected(l.filler, time.Second); err != nil {
		return fail(fmt.Errorf("fill the tarpit's queue: %w", err))
	}
	return l, nil
}

// close releases the listener; safe on nil.
func (l *fullListener) close() {
	if l == nil {
		return
	}
	for _, fd := range []*int{&l.listen, &l.filler} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// waitConnected waits for a nonblocking connect on fd to be established.
func waitConnected(fd int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		st, err := emulate.TCPStateOf(fd)
		if err != nil {
			return err
		}
		switch st {
		case emulate.TCPEstablished:
			return nil
		case emulate.TCPSynSent:
		default:
			return fmt.Errorf("TCP state %d", st)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("handshake not done")
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			return fmt.Errorf("poll: %w", err)
		}
	}
}

func rawSocket(domain, proto int, f *tarpitFamily) (int, error) {
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		return -1, err
	}
	if err := dropAll(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, f.sockaddr(0, false)); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func dropAll(fd int) error {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	return emulate.AttachFilter(fd, prog)
}

// sockaddr is the tarpit's address; mapped gives the IPv4-mapped form for
// an IPv6 socket.
func (f *tarpitFamily) sockaddr(port uint16, mapped bool) unix.Sockaddr {
	if f.v4 && mapped {
		return &unix.SockaddrInet6{Port: int(port), Addr: netip.AddrFrom16(f.addr.As16()).As16()}
	}
	if f.v4 {
		return &unix.SockaddrInet4{Port: int(port), Addr: f.addr.As4()}
	}
	return &unix.SockaddrInet6{Port: int(port), Addr: f.addr.As16()}
}

// openCapture opens an AF_PACKET socket on loopback that receives the SYNs
// sent to the tarpit, and nothing else: the ICMP error that fails a held
// connect must quote its SYN, sequence number included.
func (f *tarpitFamily) openCapture() (int, error) {
	// Protocol 0: nothing is received before bind, so the filter is in
	// place before the first packet.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("capture socket: %w", err)
	}
	if err := emulate.AttachFilter(fd, synFilter(f.v4, f.port)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("capture filter: %w", err)
	}
	proto := uint16(unix.ETH_P_IPV6)
	if f.v4 {
		proto = unix.ETH_P_IP
	}
	// A protocol-bound packet socket sees loopback packets once, as they
	// are received (outgoing copies go only to ETH_P_ALL sockets).
	sll := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: f.ifindex}
	if err := unix.Bind(fd, sll); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind capture to loopback: %w", err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// bpfCheck: load a value from the network header, compare it with want
// after masking (mask 0: no masking).
type bpfCheck struct {
	load       uint16 // BPF_LD size|mode
	off        uint32
	mask, want uint32
}

// synFilter accepts TCP segments with SYN and without ACK sent to the
// tarpit's address and port (a SOCK_DGRAM packet socket: offsets start at
// the network header). IPv6: no extension headers, as the kernel sends SYNs.
func synFilter(v4 bool, port uint16) []unix.SockFilter {
	const (
		b   = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		h   = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		w   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		hx  = unix.BPF_LD | unix.BPF_H | unix.BPF_IND
		bx  = unix.BPF_LD | unix.BPF_B | unix.BPF_IND
		syn = 0x02
		ack = 0x10
	)
	var checks []bpfCheck
	var prologue []unix.SockFilter
	if v4 {
		checks = []bpfCheck{
			{b, 9, 0, unix.IPPROTO_TCP},
			{w, 16, 0, 0x7f000001},
			{h, 6, 0x1fff, 0}, // not a later fragment
		}
		tail := []bpfCheck{
			{hx, 2, 0, uint32(port)},
			{bx, 13, syn | ack, syn},
		}
		prologue = []unix.SockFilter{{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 0}}
		return bpfProgram(checks, prologue, tail)
	}
	checks = []bpfCheck{
		{b, 6, 0, unix.IPPROTO_TCP},
		{w, 24, 0, 0}, {w, 28, 0, 0}, {w, 32, 0, 0}, {w, 36, 0, 1},
		{h, 42, 0, uint32(port)},
		{b, 53, syn | ack, syn},
	}
	return bpfProgram(checks, nil, nil)
}

// bpfProgram: every check in first, then the instructions in between, then
// every check in second must hold to accept the packet.
func bpfProgram(first []bpfCheck, between []unix.SockFilter, second []bpfCheck) []unix.SockFilter {
	var prog []unix.SockFilter
	var drops []int // indexes of jumps whose false branch must reach the drop
	emit := func(cs []bpfCheck) {
		for _, c := range cs {
			prog = append(prog, unix.SockFilter{Code: c.load, K: c.off})
			if c.mask != 0 {
				prog = append(prog, unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: c.mask})
			}
			drops = append(drops, len(prog))
			prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: c.want})
		}
	}
	emit(first)
	prog = append(prog, between...)
	emit(second)
	prog = append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff})
	drop := len(prog)
	prog = append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0})
	for _, i := range drops {
		prog[i].Jf = uint8(drop - i - 1)
	}
	return prog
}

// sockAddr is an IP address and port, IPv4-mapped addresses unmapped (the
// form the packets carry).
type sockAddr struct {
	ip   netip.Addr
	port uint16
}

func (a sockAddr) String() string { return netip.AddrPortFrom(a.ip, a.port).String() }

func sockAddrOf(sa unix.Sockaddr) sockAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return sockAddr{netip.AddrFrom4(a.Addr), uint16(a.Port)}
	case *unix.SockaddrInet6:
		return sockAddr{netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)}
	}
	return sockAddr{}
}

var errNoSYNYet = errors.New("the held connect's SYN has not been captured")

// closeCapture forgets the held connect's claim on the shared capture
// (the capture itself belongs to the tarpit family).
func (h *HeldConnect) closeCapture() {
	if h.capture < 0 {
		return
	}
	h.capture = -1
	h.fam.capMu.Lock()
	delete(h.fam.stash, h.local)
	h.fam.capMu.Unlock()
}

// readSYN waits up to wait for the held socket's SYN on the family's
// capture and keeps the headers an ICMP error must quote. SYNs of other
// held connects met on the way are stashed for them.
func (h *HeldConnect) readSYN(wait time.Duration) error {
	if h.syn != nil {
		return nil
	}
	if h.capture < 0 {
		return errors.New("no capture for the held connect's SYN")
	}
	f := h.fam
	f.capMu.Lock()
	defer f.capMu.Unlock()
	if c, ok := f.stash[h.local]; ok {
		delete(f.stash, h.local)
		h.syn, h.isn, h.capture = c.quote, c.isn, -1
		return nil
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 256)
	for {
		n, _, err := unix.Recvfrom(f.capture, buf, 0)
		if err == unix.EAGAIN {
			left := time.Until(deadline)
			if left <= 0 {
				return errNoSYNYet
			}
			pfd := []unix.PollFd{{Fd: int32(f.capture), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
				return fmt.Errorf("poll capture: %w", err)
			}
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read capture: %w", err)
		}
		src, quote, isn, ok := parseSYN(buf[:n], h.v4)
		if !ok {
			continue
		}
		c := capturedSYN{quote: append([]byte(nil), quote...), isn: isn}
		if src == h.local {
			h.syn, h.isn, h.capture = c.quote, c.isn, -1
			return nil
		}
		if len(f.stash) >= maxStash {
			clear(f.stash)
		}
		f.stash[src] = c
	}
}

// parseSYN reads a captured SYN (from the IP header on): its source, the
// IP header and first 8 bytes of TCP header (what an ICMP error quotes),
// and the ISN.
func parseSYN(pkt []byte, v4 bool) (sockAddr, []byte, uint32, bool) {
	var src netip.Addr
	var tcp int
	if v4 {
		if len(pkt) < 20 {
			return sockAddr{}, nil, 0, false
		}
		tcp = int(pkt[0]&0xf) * 4
		src = netip.AddrFrom4([4]byte(pkt[12:16]))
	} else {
		if len(pkt) < 40 {
			return sockAddr{}, nil, 0, false
		}
		tcp = 40
		src = netip.AddrFrom16([16]byte(pkt[8:24]))
	}
	if tcp < 20 || len(pkt) < tcp+8 {
		return sockAddr{}, nil, 0, false
	}
	return sockAddr{src, binary.BigEndian.Uint16(pkt[tcp:])}, pkt[:tcp+8], binary.BigEndian.Uint32(pkt[tcp+4:]), true
}

// sendICMP fails the held connect with errno by an ICMP error quoting its
// SYN, as a router or the destination host would send it. tcp_v4_err and
// tcp_v6_err only record a soft error when the program holds the socket
// lock at that instant, so the message is sent again until the connect has
// failed.
func (h *HeldConnect) sendICMP(errno unix.Errno) error {
	if err := h.readSYN(0); err != nil {
		return fmt.Errorf("%w: %v", ErrNotAsync, err)
	}
	code, ok := icmp6Errnos[errno]
	if h.v4 {
		code, ok = icmp4Errnos[errno]
	}
	if !ok {
		return fmt.Errorf("%w: %v", ErrNotAsync, errno)
	}
	msg := make([]byte, 8, 8+len(h.syn))
	msg[0], msg[1] = code.typ, code.code
	msg = append(msg, h.syn...)
	if h.v4 {
		binary.BigEndian.PutUint16(msg[2:], inetChecksum(0, msg))
	} // ICMPv6 raw sockets always have the kernel compute the checksum.
	dst := h.fam.sockaddrOf(h.local.ip, 0)
	for try := 0; try < 20; try++ {
		if err := unix.Sendto(h.fam.icmp, msg, 0, dst); err != nil {
			return fmt.Errorf("send ICMP to %v: %w", h.local.ip, err)
		}
		if err := waitClosed(h.dup, 50*time.Millisecond); err == nil {
			return nil
		}
	}
	return fmt.Errorf("the held connect ignored ICMP type %d code %d", code.typ, code.code)
}

// kick sends the held socket an ACK that does not acknowledge its SYN.
// Before any retransmission, tcp_rcv_synsent_state_process then re-arms
// the retransmission timer to TCP_TIMEOUT_MIN (and answers with a RST that
// the tarpit drops).
func (h *HeldConnect) kick() error {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], h.fam.port)
	binary.BigEndian.PutUint16(seg[2:], h.local.port)
	binary.BigEndian.PutUint32(seg[8:], h.isn) // == snd_una: unacceptable
	seg[12] = 5 << 4
	seg[13] = 0x10 // ACK
	binary.BigEndian.PutUint16(seg[14:], 1024)
	if h.v4 {
		src, dst := h.fam.addr.As4(), h.local.ip.As4()
		pseudo := make([]byte, 0, 12)
		pseudo = append(pseudo, src[:]...)
		pseudo = append(pseudo, dst[:]...)
		pseudo = append(pseudo, 0, unix.IPPROTO_TCP, 0, byte(len(seg)))
		binary.BigEndian.PutUint16(seg[16:], inetChecksum(sumWords(0, pseudo), seg))
	}
	if err := unix.Sendto(h.fam.tcp, seg, 0, h.fam.sockaddrOf(h.local.ip, 0)); err != nil {
		return fmt.Errorf("send ACK to %v: %w", h.local.ip, err)
	}
	return nil
}

func (f *tarpitFamily) sockaddrOf(ip netip.Addr, port uint16) unix.Sockaddr {
	if f.v4 {
		return &unix.SockaddrInet4{Port: int(port), Addr: ip.As4()}
	}
	return &unix.SockaddrInet6{Port: int(port), Addr: ip.As16()}
}

func sumWords(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// inetChecksum is RFC 1071's checksum of b, continuing sum.
func inetChecksum(sum uint32, b []byte) uint16 {
	sum = sumWords(sum, b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// waitClosed waits until the connect on fd is no longer in progress. It
// does not read SO_ERROR, which belongs to the program.
func waitClosed(fd int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		st, err := emulate.TCPStateOf(fd)
		if err != nil {
			return err
		}
		if st != emulate.TCPSynSent {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("connect still in progress")
		}
		// SYN_SENT polls without POLLOUT; any end of it brings POLLOUT.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		ms := int(left.Milliseconds()) + 1
		if _, err := unix.Poll(pfd, ms); err != nil && err != unix.EINTR {
			return fmt.Errorf("poll: %w", err)
		}
	}
}
