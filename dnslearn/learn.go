// Package dnslearn learns the names a wrapped tree resolves from the DNS
// answers its own sockets receive, so that host-name rules match what the
// program itself was told.
//
// The supervisor cannot read what a program receives, but as root it can
// open an AF_PACKET capture in the program's network namespace that sees
// every UDP and TCP segment from port 53. Packet taps bound to ETH_P_ALL
// run before delivery to the receiving socket (__netif_receive_skb_core
// hands the skb to ptype_all before ip_rcv; on transmit, dev_queue_xmit_nit
// runs before the driver), so by the time a program has read an answer,
// the capture holds its copy. Names drains the capture (nonblocking reads
// until EAGAIN) before it answers, so an answer is always recorded before
// the connect that uses it is decided.
//
// An answer counts for the tree only when it comes from a DNS server a
// socket of the tree asked (the destination of its connect or send, which
// the policy allowed) and goes to that socket: NoteSocket records each
// one's local address and server. Answers another process received, on
// another port, are ignored, and so is an answer a process of the tree
// forges from another address (the C library ignores those too).
package dnslearn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/dnsnames"
	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
)

// Limits, one place.
const (
	// socketIdle: a DNS socket of the tree counts this long after it was
	// last used (noted, or answered). glibc, Go and musl use a socket for
	// one lookup; c-ares keeps one per server and sends later queries with
	// write(2), untrapped, so the bound is long. A port the tree closed
	// and another process took within it would have that process's
	// answers (from the same server) counted for the tree.
	socketIdle = 10 * time.Minute
	// maxSockets bounds the sockets remembered.
	maxSockets = 4096
	// maxPending bounds answers kept for a socket not yet noted (the
	// answer to a sendto on an unbound socket can be captured before the
	// supervisor, back from the send, reads the port it was given).
	maxPending = 64
	pendingFor = 5 * time.Second
	// maxTCPBuffer bounds one TCP flow's reassembly (one DNS message).
	maxTCPBuffer = 2 + 65535
	maxFlows     = 256
	// captureBuffer is the capture's receive buffer: answers arriving
	// faster than connects drain them wait there.
	captureBuffer = 4 << 20
	snapLen       = 65535 + 60
)

// Proto is the transport of a DNS socket.
type Proto uint8

const (
	UDP Proto = unix.IPPROTO_UDP
	TCP Proto = unix.IPPROTO_TCP
)

type sockKey struct {
	proto Proto
	port  uint16
}

// maxServers bounds the servers one socket asked (musl sends to every
// nameserver from one socket).
const maxServers = 4

type sockInfo struct {
	addr    netip.Addr // local address; unspecified: any
	servers [maxServers]netip.AddrPort
	last    time.Time
}

// asked reports whether the socket sent to server.
func (s *sockInfo) asked(server netip.AddrPort) bool {
	for _, a := range s.servers {
		if a == server {
			return true
		}
	}
	return false
}

// ask records server, replacing the oldest past the bound.
func (s *sockInfo) ask(server netip.AddrPort) {
	if s.asked(server) {
		return
	}
	copy(s.servers[1:], s.servers[:maxServers-1])
	s.servers[0] = server
}

type flowKey struct {
	src, dst netip.AddrPort
}

type flow struct {
	next uint32 // next sequence number expected
	buf  []byte
}

type packet struct {
	proto Proto
	dst   netip.AddrPort
	seq   uint32
	data  []byte
	at    time.Time
	src   netip.AddrPort
}

// Learner holds the captures of one tree and the names learned.
type Learner struct {
	log   *zap.Logger
	table *dnsnames.Table

	mu      sync.Mutex
	caps    map[uint64]*fd.FD // capture per network namespace cookie
	failed  bool              // a capture could not be opened: warned once
	socks   map[sockKey]sockInfo
	pending []packet
	flows   map[flowKey]*flow
	buf     []byte
	drops   uint32
	now     func() time.Time
}

// New returns a learner; nothing is opened until a DNS socket is noted.
func New(log *zap.Logger) *Learner {
	return &Learner{
		log:   log,
		table: dnsnames.New(0),
		caps:  make(map[uint64]*fd.FD),
		socks: make(map[sockKey]sockInfo),
		flows: make(map[flowKey]*flow),
		buf:   make([]byte, snapLen),
		now:   time.Now,
	}
}

// Available reports whether this process may open captures (CAP_NET_RAW).
func Available() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	unix.Close(fd)
	return nil
}

// Close closes every capture.
func (l *Learner) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, capture := range l.caps {
		capture.Close()
		delete(l.caps, k)
	}
}

// Prepare opens a capture in sock's network namespace if there is none
// yet. It is called before a socket's first query goes out, so that the
// answer cannot arrive before the capture exists.
func (l *Learner) Prepare(sock int) {
	cookie, err := unix.GetsockoptUint64(sock, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.caps[cookie]; !ok && !l.failed {
		l.openCapture(sock, cookie)
	}
}

// NoteSocket records sock (a duplicate of a tree's socket that has just
// connected or sent to server, port 53, as the policy allowed) as one of
// the tree's DNS sockets, and opens a capture in its network namespace if
// there is none yet. An answer captured before the call returned waits in
// pending until then.
func (l *Learner) NoteSocket(sock int, proto Proto, server netip.AddrPort) {
	server = netip.AddrPortFrom(server.Addr().Unmap().WithZone(""), server.Port())
	sa, err := unix.Getsockname(sock)
	if err != nil {
		return
	}
	var local netip.AddrPort
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		local = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		local = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	default:
		return
	}
	cookie, cerr := unix.GetsockoptUint64(sock, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	l.mu.Lock()
	defer l.mu.Unlock()
	if cerr == nil {
		if _, ok := l.caps[cookie]; !ok && !l.failed {
			l.openCapture(sock, cookie)
		}
	}
	if local.Port() == 0 {
		return
	}
	k := sockKey{proto, local.Port()}
	if _, ok := l.socks[k]; !ok && len(l.socks) >= maxSockets {
		l.sweepSockets()
	}
	if len(l.socks) < maxSockets {
		si, ok := l.socks[k]
		if !ok || si.addr != local.Addr() {
			si = sockInfo{addr: local.Addr()}
		}
		si.ask(server)
		si.last = l.now()
		l.socks[k] = si
	}
	// Answers captured before the port was known.
	kept := l.pending[:0]
	for _, p := range l.pending {
		if !l.deliver(p) && l.now().Sub(p.at) < pendingFor {
			kept = append(kept, p)
		}
	}
	l.pending = kept
}

func (l *Learner) sweepSockets() {
	now := l.now()
	for k, s := range l.socks {
		if now.Sub(s.last) > socketIdle {
			delete(l.socks, k)
		}
	}
}

func (l *Learner) openCapture(sock int, cookie uint64) {
	var capture *fd.FD
	err := emulate.InNetnsOf(sock, func() error {
		var err error
		capture, err = openCapture()
		return err
	})
	if err != nil {
		l.failed = true
		l.log.Warn("cannot capture DNS answers: host-name rules match only the addresses resolved at load", zap.Error(err))
		return
	}
	l.caps[cookie] = capture
}

// openCapture opens a packet socket that receives every incoming IPv4 and
// IPv6 UDP or TCP packet from port 53, network header first.
func openCapture() (*fd.FD, error) {
	// Protocol 0: nothing is received before bind, so the filter is in
	// place before the first packet.
	n, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("capture socket: %w", err)
	}
	capture := fd.New(n)
	defer capture.Close() // unless returned
	prog, err := captureFilter()
	if err == nil {
		err = emulate.AttachFilter(n, prog)
	}
	if err != nil {
		return nil, fmt.Errorf("capture filter: %w", err)
	}
	if err := unix.SetsockoptInt(n, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuffer); err != nil {
		unix.SetsockoptInt(n, unix.SOL_SOCKET, unix.SO_RCVBUF, captureBuffer)
	}
	// ETH_P_ALL: the tap runs before the stack delivers the packet (a
	// protocol-bound tap on a device runs after ip_rcv).
	if err := unix.Bind(n, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		return nil, fmt.Errorf("bind capture: %w", err)
	}
	return capture.Move(), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// captureFilter accepts incoming (not PACKET_OUTGOING) IPv4 packets that
// are not later fragments and IPv6 packets without extension headers,
// carrying UDP or TCP from port 53.
func captureFilter() ([]unix.SockFilter, error) {
	const drop, accept = 0, snapLen
	ins := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 17},
		bpf.LoadExtension{Num: bpf.ExtProto},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IP, SkipFalse: 8},
		// IPv4
		bpf.LoadAbsolute{Off: 9, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_UDP, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_TCP, SkipFalse: 12},
		bpf.LoadAbsolute{Off: 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 10},
		bpf.LoadMemShift{Off: 0},
		bpf.LoadIndirect{Off: 0, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 53, SkipTrue: 6, SkipFalse: 7},
		// IPv6
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IPV6, SkipFalse: 6},
		bpf.LoadAbsolute{Off: 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_UDP, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_TCP, SkipFalse: 3},
		bpf.LoadAbsolute{Off: 40, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 53, SkipFalse: 1},
		bpf.RetConstant{Val: accept},
		bpf.RetConstant{Val: drop},
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return nil, err
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// Names drains the captures, then appends to buf the names the tree's
// answers gave for a, within their TTL plus grace.
func (l *Learner) Names(a netip.Addr, grace time.Duration, buf []string) []string {
	l.mu.Lock()
	l.drain()
	l.mu.Unlock()
	return l.table.Names(a, l.now(), grace, buf)
}

// Table is the learned mappings (for tests and statistics).
func (l *Learner) Table() *dnsnames.Table { return l.table }

// drain reads every packet waiting in the captures.
func (l *Learner) drain() {
	for _, capture := range l.caps {
		read := false
		for {
			n, _, err := unix.Recvfrom(capture.Int(), l.buf, unix.MSG_DONTWAIT)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
					l.log.Debug("read DNS capture", zap.Error(err))
				}
				break
			}
			read = true
			l.packet(l.buf[:n])
		}
		if !read {
			continue // a full buffer has packets to read: no drops without them
		}
		if st, err := unix.GetsockoptTpacketStats(capture.Int(), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil && st.Drops > 0 {
			l.drops += st.Drops
			l.log.Warn("DNS answers lost by the capture (its buffer was full): connects to their addresses are decided without them",
				zap.Uint32("dropped", st.Drops), zap.Uint32("total", l.drops))
		}
	}
}

// packet decodes one captured IP packet and learns from it if it is
// addressed to a DNS socket of the tree.
func (l *Learner) packet(b []byte) {
	p, ok := decodeIP(b)
	if !ok {
		l.log.Debug("undecodable packet from port 53", zap.Int("len", len(b)))
		return
	}
	p.at = l.now()
	if l.deliver(p) {
		return
	}
	if len(l.pending) >= maxPending {
		l.pending = append(l.pending[:0], l.pending[1:]...)
	}
	p.data = append([]byte(nil), p.data...)
	l.pending = append(l.pending, p)
}

// deliver learns from p when its destination is a DNS socket of the tree,
// and reports whether it was.
func (l *Learner) deliver(p packet) bool {
	k := sockKey{p.proto, p.dst.Port()}
	s, ok := l.socks[k]
	if !ok || (s.addr.IsValid() && !s.addr.IsUnspecified() && s.addr != p.dst.Addr()) || p.at.Sub(s.last) > socketIdle || !s.asked(p.src) {
		return false
	}
	s.last = p.at
	l.socks[k] = s
	if p.proto == UDP {
		l.learn(p.data)
		return true
	}
	l.tcp(p)
	return true
}

// tcp reassembles a DNS-over-TCP stream (two-byte length, message) from
// in-order segments; a gap drops what was buffered.
func (l *Learner) tcp(p packet) {
	fk := flowKey{p.src, p.dst}
	f := l.flows[fk]
	if f == nil || f.next != p.seq {
		if len(p.data) == 0 {
			return // SYN-ACK, ACK or FIN: nothing to read
		}
		if len(l.flows) >= maxFlows {
			clear(l.flows)
		}
		f = &flow{}
		l.flows[fk] = f
	}
	f.next = p.seq + uint32(len(p.data))
	f.buf = append(f.buf, p.data...)
	for len(f.buf) >= 2 {
		n := int(binary.BigEndian.Uint16(f.buf))
		if len(f.buf) < 2+n {
			break
		}
		l.learn(f.buf[2 : 2+n])
		f.buf = f.buf[2+n:]
	}
	if len(f.buf) > maxTCPBuffer {
		delete(l.flows, fk)
	}
	if len(f.buf) == 0 {
		f.buf = nil
	}
}

func (l *Learner) learn(msg []byte) {
	n, err := l.table.Learn(msg, l.now())
	if err != nil && !errors.Is(err, dnsnames.ErrNotAnswer) {
		l.log.Debug("DNS answer ignored", zap.Error(err), zap.Int("learned", n))
	}
}

// decodeIP reads the addresses, ports and payload of an IPv4 or IPv6 UDP
// or TCP packet (network header first).
func decodeIP(b []byte) (packet, bool) {
	var p packet
	var src, dst netip.Addr
	var l4 []byte
	if len(b) < 1 {
		return p, false
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return p, false
		}
		ihl := int(b[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || total < ihl || total > len(b) {
			return p, false
		}
		p.proto = Proto(b[9])
		src = netip.AddrFrom4([4]byte(b[12:16]))
		dst = netip.AddrFrom4([4]byte(b[16:20]))
		l4 = b[ihl:total]
	case 6:
		if len(b) < 40 {
			return p, false
		}
		plen := int(binary.BigEndian.Uint16(b[4:]))
		if 40+plen > len(b) {
			return p, false
		}
		p.proto = Proto(b[6])
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dst = netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40 : 40+plen]
	default:
		return p, false
	}
	switch p.proto {
	case UDP:
		if len(l4) < 8 {
			return p, false
		}
		p.data = l4[8:]
	case TCP:
		if len(l4) < 20 {
			return p, false
		}
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			return p, false
		}
		p.seq = binary.BigEndian.Uint32(l4[4:])
		if l4[13]&0x02 != 0 { // SYN: data starts after it
			p.seq++
		}
		p.data = l4[off:]
	default:
		return p, false
	}
	p.src = netip.AddrPortFrom(src.Unmap(), binary.BigEndian.Uint16(l4[0:]))
	p.dst = netip.AddrPortFrom(dst.Unmap(), binary.BigEndian.Uint16(l4[2:]))
	return p, true
}
