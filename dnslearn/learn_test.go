package dnslearn

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// udp4 builds an IPv4 UDP packet from port 53 to dst.
func udp4(dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 28+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 17
	copy(b[12:], []byte{127, 0, 0, 53})
	a := dst.Addr().As4()
	copy(b[16:], a[:])
	binary.BigEndian.PutUint16(b[20:], 53)
	binary.BigEndian.PutUint16(b[22:], dst.Port())
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	return b
}

func answerA(t testing.TB, name, addr string) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Response = true
	rr, _ := dns.NewRR(name + " 5 IN A " + addr)
	m.Answer = append(m.Answer, rr)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Only answers to a noted socket of the tree count; an answer captured
// before its socket was noted counts once it is.
func TestAttribution(t *testing.T) {
	l := New(zap.NewNop())
	tree := netip.MustParseAddrPort("127.0.0.1:40000")
	other := netip.MustParseAddrPort("127.0.0.1:40001")
	si := sockInfo{addr: netip.IPv4Unspecified(), last: time.Now()}
	si.ask(netip.MustParseAddrPort("127.0.0.53:53"))
	l.socks[sockKey{UDP, tree.Port()}] = si
	l.packet(udp4(other, answerA(t, "outside.test.", "10.0.0.2")))
	l.packet(udp4(tree, answerA(t, "inside.test.", "10.0.0.1")))
	// Forged by the tree from another address: not the server asked.
	forged := udp4(tree, answerA(t, "forged.test.", "10.0.0.3"))
	forged[15] = 54
	l.packet(forged)
	if got := l.table.Names(netip.MustParseAddr("10.0.0.3"), time.Now(), 0, nil); len(got) != 0 {
		t.Errorf("an answer from a server the socket never asked counted: %v", got)
	}
	if got := l.table.Names(netip.MustParseAddr("10.0.0.1"), time.Now(), 0, nil); len(got) != 1 || got[0] != "inside.test" {
		t.Errorf("tree's answer: %v", got)
	}
	if got := l.table.Names(netip.MustParseAddr("10.0.0.2"), time.Now(), 0, nil); len(got) != 0 {
		t.Errorf("another socket's answer counted: %v", got)
	}
	if len(l.pending) != 2 {
		t.Fatalf("pending %d, want the other answer kept for a while", len(l.pending))
	}
}

// The capture filter accepts UDP and TCP from port 53 and nothing else
// (run in x/net/bpf's VM, which lacks the pkttype and protocol extensions:
// those are checked on real packets by test/dns).
func TestFilterAssembles(t *testing.T) {
	prog, err := captureFilter()
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(prog))
	for i, f := range prog {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	if _, ok := bpf.Disassemble(raw); !ok {
		t.Error("filter does not disassemble")
	}
}

func FuzzPacket(f *testing.F) {
	tree := netip.MustParseAddrPort("127.0.0.1:40000")
	f.Add(udp4(tree, answerA(f, "a.test.", "10.0.0.1")))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 17, 64})
	f.Fuzz(func(t *testing.T, b []byte) {
		l := New(zap.NewNop())
		si := sockInfo{addr: netip.IPv4Unspecified(), last: time.Now()}
		si.ask(netip.MustParseAddrPort("127.0.0.53:53"))
		l.socks[sockKey{UDP, tree.Port()}] = si
		l.socks[sockKey{TCP, tree.Port()}] = si
		for i := 0; i < 3; i++ {
			l.packet(b)
		}
		if len(l.pending) > maxPending || len(l.flows) > maxFlows {
			t.Fatal("bounds broken")
		}
		for _, fl := range l.flows {
			if len(fl.buf) > maxTCPBuffer+65535 {
				t.Fatal("flow buffer unbounded")
			}
		}
	})
}

// BenchmarkDrainEmpty is what a decision under a policy with names pays
// when no answer waits: one nonblocking read of the capture.
func BenchmarkDrainEmpty(b *testing.B) {
	capture, err := openCapture()
	if err != nil {
		b.Skipf("no capture (needs CAP_NET_RAW): %v", err)
	}
	l := New(zap.NewNop())
	l.caps[1] = capture
	defer l.Close()
	a := netip.MustParseAddr("10.0.0.1")
	var buf [4]string
	for b.Loop() {
		l.Names(a, time.Minute, buf[:0])
	}
}

// Decisions (Names) and calls to port 53 (NoteSocket) come from the loop
// and from held calls at once.
func TestConcurrentUse(t *testing.T) {
	l := New(zap.NewNop())
	defer l.Close()
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer unix.Close(fd)
			unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
			server := netip.MustParseAddrPort("127.0.0.53:53")
			var buf [4]string
			for i := 0; i < 200; i++ {
				l.Prepare(fd)
				l.NoteSocket(fd, UDP, server)
				l.Names(netip.MustParseAddr("10.0.0.1"), time.Minute, buf[:0])
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
