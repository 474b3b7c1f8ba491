package tarpit

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
)

// capturedSYN is what an ICMP error must quote from a SYN, and its ISN.
type capturedSYN struct {
	quote []byte
	isn   uint32
}

// openCapture opens an AF_PACKET socket on loopback that receives the SYNs
// sent to the tarpit, and nothing else: the ICMP error that fails a held
// connect must quote its SYN, sequence number included.
func (f *loopbackFamily) openCapture() (*fd.FD, error) {
	// Protocol 0: nothing is received before bind, so the filter is in
	// place before the first packet.
	n, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("capture socket: %w", err)
	}
	s := fd.New(n)
	defer s.Close()
	if err := emulate.AttachFilter(s.Int(), synFilter(f.v4, f.port)); err != nil {
		return nil, fmt.Errorf("capture filter: %w", err)
	}
	proto := uint16(unix.ETH_P_IPV6)
	if f.v4 {
		proto = unix.ETH_P_IP
	}
	// A protocol-bound packet socket sees loopback packets once, as they
	// are received (outgoing copies go only to ETH_P_ALL sockets).
	sll := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: f.ifindex}
	if err := unix.Bind(s.Int(), sll); err != nil {
		return nil, fmt.Errorf("bind capture to loopback: %w", err)
	}
	return s.Move(), nil
}

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
		b  = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		h  = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		w  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		hx = unix.BPF_LD | unix.BPF_H | unix.BPF_IND
		bx = unix.BPF_LD | unix.BPF_B | unix.BPF_IND
	)
	if v4 {
		checks := []bpfCheck{
			{b, 9, 0, unix.IPPROTO_TCP}, // protocol
			{w, 16, 0, 0x7f000001},      // destination 127.0.0.1
			{h, 6, 0x1fff, 0},           // not a later fragment
		}
		// X = the IP header's length, then offsets in the TCP header.
		prologue := []unix.SockFilter{{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 0}}
		tail := []bpfCheck{
			{hx, 2, 0, uint32(port)},                      // destination port
			{bx, 13, tcpFlagSYN | tcpFlagACK, tcpFlagSYN}, // flags
		}
		return bpfProgram(checks, prologue, tail)
	}
	checks := []bpfCheck{
		{b, 6, 0, unix.IPPROTO_TCP},                                // next header
		{w, 24, 0, 0}, {w, 28, 0, 0}, {w, 32, 0, 0}, {w, 36, 0, 1}, // destination ::1
		{h, ipv6HeaderLen + 2, 0, uint32(port)},                      // destination port
		{b, ipv6HeaderLen + 13, tcpFlagSYN | tcpFlagACK, tcpFlagSYN}, // flags
	}
	return bpfProgram(checks, nil, nil)
}

// bpfProgram: every check in first, then the instructions in between, then
// every check in second must hold to accept the packet.
func bpfProgram(first []bpfCheck, between []unix.SockFilter, second []bpfCheck) []unix.SockFilter {
	const keepAll = 0xffff // a filter returns how many bytes to keep
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
	prog = append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: keepAll})
	drop := len(prog)
	prog = append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0})
	for _, i := range drops {
		prog[i].Jf = uint8(drop - i - 1)
	}
	return prog
}

// parseSYN reads a captured SYN (from the IP header on): its source, the
// IP header and first 8 bytes of TCP header (what an ICMP error quotes),
// and the ISN.
func parseSYN(pkt []byte, v4 bool) (sockAddr, []byte, uint32, bool) {
	var src netip.Addr
	var tcp int
	if v4 {
		if len(pkt) < ipv4HeaderLen {
			return sockAddr{}, nil, 0, false
		}
		tcp = int(pkt[0]&0xf) * 4                  // IHL, in 32-bit words
		src = netip.AddrFrom4([4]byte(pkt[12:16])) // source address
	} else {
		if len(pkt) < ipv6HeaderLen {
			return sockAddr{}, nil, 0, false
		}
		tcp = ipv6HeaderLen
		src = netip.AddrFrom16([16]byte(pkt[8:24])) // source address
	}
	if tcp < ipv4HeaderLen || len(pkt) < tcp+icmpQuotedTCP {
		return sockAddr{}, nil, 0, false
	}
	srcPort, seq := binary.BigEndian.Uint16(pkt[tcp:]), binary.BigEndian.Uint32(pkt[tcp+4:])
	return sockAddr{src, srcPort}, pkt[:tcp+icmpQuotedTCP], seq, true
}
