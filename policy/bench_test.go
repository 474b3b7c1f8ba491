package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

// randomPolicy writes n rules of random CIDRs (lengths 8 to 32, a few
// IPv6) with ports, as a large real allow list would look.
func randomPolicy(n int, rng *rand.Rand) string {
	var b strings.Builder
	b.WriteString("default deny\n")
	for i := 0; i < n; i++ {
		action := "allow"
		if i%7 == 0 {
			action = "deny"
		}
		if i%10 == 9 {
			a := netip.AddrFrom16([16]byte{0xfd, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			fmt.Fprintf(&b, "%s tcp [%s] port %d\n", action, netip.PrefixFrom(a, 32+rng.IntN(33)).Masked(), 1+rng.IntN(65535))
			continue
		}
		a := netip.AddrFrom4([4]byte{byte(1 + rng.IntN(222)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		p := netip.PrefixFrom(a, 8+rng.IntN(25)).Masked()
		switch rng.IntN(3) {
		case 0:
			fmt.Fprintf(&b, "%s tcp %s port %d\n", action, p, 1+rng.IntN(65535))
		case 1:
			lo := 1 + rng.IntN(60000)
			fmt.Fprintf(&b, "%s %s:%d-%d\n", action, p, lo, lo+rng.IntN(100))
		default:
			fmt.Fprintf(&b, "%s udp %s port 53,123,%d\n", action, p, 1000+rng.IntN(1000))
		}
	}
	return b.String()
}

// BenchmarkDecide measures a decision against policies of random CIDR
// rules. "late" is a destination inside many prefixes whose ports match only
// the last rule; "none" matches nothing and gets the default.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		text := randomPolicy(n, rng)
		// The late match: 10.1.2.3:4444 is in 10/8 and 10.1/16 (added
		// by many rules with other ports) and matched by the last rule.
		var extra strings.Builder
		for i := 0; i < 20; i++ {
			fmt.Fprintf(&extra, "allow tcp 10.0.0.0/8 port %d\nallow tcp 10.1.0.0/16 port %d\n", 5000+i, 6000+i)
		}
		extra.WriteString("deny tcp 10.1.2.0/24 port 4444 errno=ECONNREFUSED\n")
		p := mustLoad(b, text+extra.String())
		late := Dest{Family: syscall.AF_INET, SockType: syscall.SOCK_STREAM, Addr: netip.MustParseAddr("10.1.2.3"), Port: 4444}
		none := Dest{Family: syscall.AF_INET, SockType: syscall.SOCK_STREAM, Addr: netip.MustParseAddr("223.255.255.1"), Port: 1}
		v6 := Dest{Family: syscall.AF_INET6, SockType: syscall.SOCK_STREAM, Addr: netip.MustParseAddr("fd12:3456::1"), Port: 443}
		if d := p.Decide(&late); d.Rule == nil || d.Errno != syscall.ECONNREFUSED {
			b.Fatalf("late destination decided by %v", d.Rule)
		}
		for _, c := range []struct {
			name string
			d    *Dest
		}{{"late", &late}, {"none", &none}, {"v6", &v6}} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p.Decide(c.d)
				}
			})
		}
	}
}

func mustLoad(tb testing.TB, text string, flags ...FlagRule) *Policy {
	tb.Helper()
	p, err := Load(flags, "test.policy", testOptions(map[string]string{"test.policy": text}))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
