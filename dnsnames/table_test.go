package dnsnames

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func answer(t testing.TB, q string, qtype uint16, rrs ...string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(q, qtype)
	m.Response = true
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLearnAAndAAAA(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := New(0)
	if _, err := tb.Learn(answer(t, "Api.Example.com.", dns.TypeA, "api.example.com. 30 IN A 10.0.0.1", "api.example.com. 30 IN A 10.0.0.2"), now); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Learn(answer(t, "api.example.com.", dns.TypeAAAA, "api.example.com. 30 IN AAAA fd00::1"), now); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.0.0.1", "10.0.0.2", "fd00::1", "::ffff:10.0.0.1"} {
		if got := tb.Names(netip.MustParseAddr(a), now, 0, nil); !slices.Equal(got, []string{"api.example.com"}) {
			t.Errorf("%s: names %v, want [api.example.com]", a, got)
		}
	}
	// TTL 30 s, grace 60 s: alive at 89 s, gone at 91 s.
	if got := tb.Names(netip.MustParseAddr("10.0.0.1"), now.Add(89*time.Second), time.Minute, nil); len(got) != 1 {
		t.Errorf("within TTL+grace: %v", got)
	}
	if got := tb.Names(netip.MustParseAddr("10.0.0.1"), now.Add(91*time.Second), time.Minute, nil); len(got) != 0 {
		t.Errorf("past TTL+grace: %v", got)
	}
}

func TestCNAMEChain(t *testing.T) {
	now := time.Unix(1000, 0)
	// Records out of order, an unrelated A record the chain does not reach.
	msg := answer(t, "www.shop.test.", dns.TypeA,
		"edge.cdn.test. 5 IN A 10.9.9.9",
		"www.shop.test. 300 IN CNAME shop.cdn.test.",
		"other.test. 300 IN A 10.6.6.6",
		"shop.cdn.test. 300 IN CNAME edge.cdn.test.")
	ms, err := Parse(msg, now)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		if m.Addr != netip.MustParseAddr("10.9.9.9") {
			t.Errorf("mapping to %s: the chain does not reach it", m.Addr)
		}
		if !m.Until.Equal(now.Add(5 * time.Second)) {
			t.Errorf("%s until %v, want the chain's smallest TTL (5 s)", m.Name, m.Until)
		}
		names = append(names, m.Name)
	}
	if want := []string{"www.shop.test", "shop.cdn.test", "edge.cdn.test"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
}

func TestCNAMELoop(t *testing.T) {
	msg := answer(t, "a.test.", dns.TypeA,
		"a.test. 5 IN CNAME b.test.", "b.test. 5 IN CNAME a.test.", "a.test. 5 IN A 10.1.1.1")
	ms, err := Parse(msg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The loop ends at b.test, whose A records there are none of.
	if len(ms) != 0 {
		t.Errorf("a CNAME loop gave mappings: %v", ms)
	}
}

func TestNotAnswers(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("a.test.", dns.TypeA)
	query, _ := q.Pack()
	nx := new(dns.Msg)
	nx.SetRcode(q, dns.RcodeNameError)
	nxb, _ := nx.Pack()
	good := answer(t, "a.test.", dns.TypeA, "a.test. 5 IN A 10.1.1.1")
	cases := map[string][]byte{
		"query":     query,
		"nxdomain":  nxb,
		"truncated": good[:len(good)-2],
		"empty":     nil,
		"header":    good[:12],
		// A compression pointer to itself at the question's name.
		"pointer loop": append(append([]byte{}, good[:12]...), 0xc0, 12, 0, 1, 0, 1),
	}
	for name, msg := range cases {
		tb := New(0)
		if n, err := tb.Learn(msg, time.Now()); err == nil || n != 0 || tb.Len() != 0 {
			t.Errorf("%s: learned %d (err %v)", name, n, err)
		}
	}
}

func TestBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := New(4)
	for i := 0; i < 4; i++ {
		ip := net.IPv4(10, 0, 0, byte(i)).String()
		if _, err := tb.Learn(answer(t, "a.test.", dns.TypeA, "a.test. 1 IN A "+ip), now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Learn(answer(t, "b.test.", dns.TypeA, "b.test. 1 IN A 10.0.1.1"), now); err != ErrFull {
		t.Fatalf("fifth mapping: err %v, want ErrFull", err)
	}
	// Once the old ones are past their TTL, they make room (a full table
	// gives up their grace).
	later := now.Add(2 * time.Second)
	if _, err := tb.Learn(answer(t, "b.test.", dns.TypeA, "b.test. 1 IN A 10.0.1.1"), later); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if tb.Len() != 1 {
		t.Errorf("len %d, want 1", tb.Len())
	}
}

func FuzzParse(f *testing.F) {
	f.Add(answer(f, "a.test.", dns.TypeA, "a.test. 5 IN A 10.1.1.1"))
	f.Add(answer(f, "www.shop.test.", dns.TypeAAAA, "www.shop.test. 300 IN CNAME shop.cdn.test.", "shop.cdn.test. 9 IN AAAA fd00::9"))
	f.Add([]byte{0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		now := time.Unix(1000, 0)
		tb := New(64)
		ms, err := Parse(msg, now)
		if err != nil && len(ms) != 0 {
			t.Fatalf("error %v with %d mappings", err, len(ms))
		}
		n, _ := tb.Learn(msg, now)
		if n > 64 || tb.Len() > 64 {
			t.Fatalf("bound broken: %d", tb.Len())
		}
		for _, m := range ms {
			if !m.Addr.IsValid() || m.Name != Canonical(m.Name) || m.Until.After(now.Add(maxTTL)) {
				t.Fatalf("bad mapping %+v", m)
			}
			if got := tb.Names(m.Addr, now, 0, nil); !slices.Contains(got, m.Name) && tb.Len() < 64 {
				t.Fatalf("mapping %+v not found: %v", m, got)
			}
		}
	})
}

func BenchmarkLearn(b *testing.B) {
	msg := answer(b, "www.shop.test.", dns.TypeA, "www.shop.test. 300 IN CNAME shop.cdn.test.", "shop.cdn.test. 5 IN A 10.9.9.9", "shop.cdn.test. 5 IN A 10.9.9.10")
	tb := New(0)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tb.Learn(msg, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNames(b *testing.B) {
	tb := New(0)
	now := time.Now()
	tb.Learn(answer(b, "a.test.", dns.TypeA, "a.test. 5 IN A 10.9.9.9"), now)
	a := netip.MustParseAddr("10.9.9.9")
	var buf [4]string
	b.ReportAllocs()
	for b.Loop() {
		if len(tb.Names(a, now, time.Minute, buf[:0])) != 1 {
			b.Fatal("not found")
		}
	}
}
