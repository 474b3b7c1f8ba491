package policy

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func dest(t testing.TB, s string) *Dest {
	t.Helper()
	d, err := ParseDest(s)
	if err != nil {
		t.Fatal(err)
	}
	return &d
}

// TestMatchers decides one destination per row against a policy; want is
// "ACTION ERRNO@LINE" (LINE 0: the default decided).
func TestMatchers(t *testing.T) {
	const text = `default deny errno=EACCES
allow tcp 10.20.0.0/16 port 5432
allow udp [fd00::/8] port 53
allow tcp api.example.com port 443
deny tcp 169.254.169.254 errno=ENETUNREACH
allow unix /run/postgresql/*
allow unix /srv/**
deny unix @*
allow any exe=/usr/bin/curl 127.0.0.0/8
allow unix unnamed
deny netlink
log tcp 0.0.0.0/0 port 443
allow 192.168.1.0/24:80,443,8000-8100
allow [::1]:80-90
allow *:53
allow uid=1000-1999 172.16.0.0/12
allow unix:/run/x.sock
allow vsock
deny AF_PACKET=EACCES
allow 198.51.100.7 delay=250ms
`
	p := mustLoad(t, text)
	rows := []struct{ dest, want string }{
		{"tcp 10.20.3.4:5432", "allow@2"},
		{"udp 10.20.3.4:5432", "deny EACCES@0"},    // protocol
		{"ip 10.20.3.4:5432", "deny EACCES@0"},     // unknown socket type matches only any
		{"tcp 10.20.3.4:5433", "deny EACCES@0"},    // port
		{"tcp [::ffff:10.20.3.4]:5432", "allow@2"}, // IPv4-mapped
		{"udp [fd00::1]:53", "allow@3"},            // IPv6 prefix
		{"udp [fe00::1]:53", "allow@15"},           // falls to *:53
		{"tcp 192.0.2.10:443", "allow@4"},          // host name, A
		{"tcp [2001:db8::10]:443", "allow@4"},      // host name, AAAA
		{"tcp 192.0.2.11:443", "log@12"},           // log
		{"tcp 169.254.169.254:80", "deny ENETUNREACH@5"},
		{"unix /run/postgresql/.s.PGSQL.5432", "allow@6"},
		{"unix /run/postgresql/sub/x", "deny EACCES@0"}, // * does not cross /
		{"unix /srv/a/b/c.sock", "allow@7"},             // ** does
		{"unix @/tmp/.X11-unix/X0", "deny EPERM@8"},     // abstract * crosses /
		{"unix /run/x.sock", "allow@17"},
		{"unix unnamed", "allow@10"},
		{"unix /elsewhere", "deny EACCES@0"},
		{"tcp 127.0.0.1:9 exe=/usr/bin/curl", "allow@9"},
		{"tcp 127.0.0.1:9 exe=/usr/bin/wget", "deny EACCES@0"},
		{"netlink", "deny EPERM@11"},
		{"vsock", "allow@18"},
		{"packet", "deny EACCES@19"},
		{"unspec", "allow@0"}, // dissolve: default does not apply
		{"bluetooth", "deny EACCES@0"},
		{"tcp 192.168.1.9:8050", "allow@13"},
		{"tcp 192.168.1.9:8101", "deny EACCES@0"},
		{"tcp [::1]:85", "allow@14"},
		{"tcp [::1]:91", "deny EACCES@0"},
		{"tcp 172.20.0.1:1 uid=1500", "allow@16"},
		{"tcp 172.20.0.1:1 uid=2000", "deny EACCES@0"},
		{"tcp 198.51.100.7:1", "allow@20"},
	}
	for _, row := range rows {
		d := dest(t, row.dest)
		if got := describe(decided(p, d)); got != row.want {
			t.Errorf("%s: got %s, want %s", row.dest, got, row.want)
		}
	}
	if got := decided(p, dest(t, "tcp 198.51.100.7:1")).Delay; got.String() != "250ms" {
		t.Errorf("delay = %v", got)
	}
	if !p.NeedsExe() || !p.NeedsUID() {
		t.Errorf("NeedsExe %v NeedsUID %v, want both", p.NeedsExe(), p.NeedsUID())
	}
}

func describe(d Decision) string {
	s := d.Action.String()
	if d.Action == Deny || d.Action == Fail {
		if d.Blackhole {
			s += " blackhole"
		} else {
			s += " " + ErrnoName(d.Errno)
		}
	}
	line := 0
	if d.Rule != nil {
		line = d.Rule.line
	}
	return s + "@" + itoa(line)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestUnspecNamed(t *testing.T) {
	p := mustLoad(t, "deny unspec errno=EINVAL\ndefault allow\n")
	if got := describe(decided(p, dest(t, "unspec"))); got != "deny EINVAL@1" {
		t.Errorf("unspec: %s", got)
	}
	// `deny any` is every family but unspec.
	p = mustLoad(t, "deny any\n")
	if got := describe(decided(p, dest(t, "unspec"))); got != "allow@0" {
		t.Errorf("unspec under deny any: %s", got)
	}
}

func TestDefault(t *testing.T) {
	p := Default()
	for dst, want := range map[string]string{
		"tcp 127.0.0.1:80":          "allow",
		"udp 127.1.2.3:53":          "allow",
		"tcp [::1]:80":              "allow",
		"tcp [::ffff:127.0.0.1]:80": "allow",
		"unix /x":                   "allow",
		"unix @abstract":            "allow",
		"unix unnamed":              "allow",
		"unspec":                    "allow",
		"tcp 10.0.0.1:80":           "deny EPERM",
		"tcp [2001:db8::1]:80":      "deny EPERM",
		"netlink":                   "deny EPERM",
	} {
		got := describe(decided(p, dest(t, dst)))
		got = got[:strings.IndexByte(got, '@')]
		if got != want {
			t.Errorf("%s: %s, want %s", dst, got, want)
		}
	}
	if len(p.Warnings()) != 0 {
		t.Errorf("default policy warns: %v", p.Warnings())
	}
	// An explicit default replaces the embedded policy: nothing of it
	// stays behind the flag rules (issue 12).
	p, err := Load([]FlagRule{{"deny", "127.0.0.1:8080=ECONNREFUSED"}, {"allow", "10.0.0.1:443"}, {"default", "deny=EACCES"}}, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for dst, want := range map[string]string{
		"tcp 127.0.0.1:8080": "deny ECONNREFUSED --deny",
		"tcp 10.0.0.1:443":   "allow --allow",
		"tcp 127.0.0.1:8081": "deny EACCES default",
		"unix /run/x.sock":   "deny EACCES default",
		"tcp 10.0.0.1:1":     "deny EACCES default",
		"unspec":             "allow default",
		"netlink kernel":     "allow default",
		"netlink":            "deny EACCES default",
	} {
		d := decided(p, dest(t, dst))
		origin := "default"
		if d.Rule != nil {
			origin = d.Rule.Origin()
		}
		if got := strings.TrimSuffix(describe(d), "@0") + " " + origin; got != want {
			t.Errorf("explicit default: %s: %s, want %s", dst, got, want)
		}
	}
	if n := len(p.Rules()); n != 2 {
		t.Errorf("explicit default: %d rules, want the 2 flag rules alone", n)
	}
	// Flags without a file and without --default go in front of the
	// default's rules.
	p, err = Load([]FlagRule{{"deny", "127.0.0.1:8080=ECONNREFUSED"}}, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for dst, want := range map[string]string{
		"tcp 127.0.0.1:8080": "deny ECONNREFUSED@0",
		"tcp 127.0.0.1:8081": "allow@2", // line 2 of the embedded default
		"tcp 10.0.0.1:1":     "deny EPERM@0",
		"netlink kernel":     "allow@0",
	} {
		if got := describe(decided(p, dest(t, dst))); got != want {
			t.Errorf("flags: %s: %s, want %s", dst, got, want)
		}
	}
	if o := p.Rules()[0].Origin(); o != "--deny" {
		t.Errorf("origin %q", o)
	}
	if o := p.Rules()[1].Origin(); o != "default" {
		t.Errorf("origin %q", o)
	}
}

// TestFlagsBeforeFile: flag rules come first, and a --default replaces the
// file's default.
func TestFlagsBeforeFile(t *testing.T) {
	p := mustLoad(t, "allow 10.0.0.0/8\ndefault allow\n", FlagRule{"deny", "10.1.0.0/16"}, FlagRule{"default", "deny"})
	if got := describe(decided(p, dest(t, "tcp 10.1.0.1:1"))); got != "deny EPERM@0" {
		t.Errorf("got %s", got)
	}
	if got := describe(decided(p, dest(t, "tcp 10.2.0.1:1"))); got != "allow@1" {
		t.Errorf("got %s", got)
	}
	if got := p.DefaultDecision(); got.Action != Deny || got.Rule != nil {
		t.Errorf("default %+v", got)
	}
}

// TestIndexAgreesWithScan compares Decide with a linear scan of the rules
// over random policies and destinations.
func TestIndexAgreesWithScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var b strings.Builder
	b.WriteString(randomPolicy(300, rng))
	b.WriteString("allow tcp 10.0.0.0/8 port 5000-6000\ndeny unix /run/*\nallow any uid=5\nallow netlink\ndeny tcp port 22\nallow any 0.0.0.0/1\n")
	p := mustLoad(t, b.String())
	// Destinations near the rules' prefixes, so that many match.
	var addrs []netip.Addr
	for _, r := range p.rules {
		for _, pf := range r.prefixes {
			a := pf.Addr().As16()
			if pf.Addr().Is4() {
				a4 := pf.Addr().As4()
				a4[3] += byte(rng.IntN(3))
				addrs = append(addrs, netip.AddrFrom4(a4))
				continue
			}
			a[15] += byte(rng.IntN(3))
			addrs = append(addrs, netip.AddrFrom16(a))
		}
	}
	for k := 0; k < 20000; k++ {
		d := Dest{Family: syscall.AF_INET, SockType: []int{0, syscall.SOCK_STREAM, syscall.SOCK_DGRAM}[rng.IntN(3)], UID: uint32(rng.IntN(7))}
		switch rng.IntN(10) {
		case 0:
			d.Family, d.Path = syscall.AF_UNIX, []string{"/run/a", "/run/a/b", "/x"}[rng.IntN(3)]
		case 1:
			d.Family = uint16([]int{syscall.AF_NETLINK, syscall.AF_PACKET, syscall.AF_UNSPEC}[rng.IntN(3)])
		default:
			d.Addr = addrs[rng.IntN(len(addrs))]
			if d.Addr.Is6() {
				d.Family = syscall.AF_INET6
			}
			if rng.IntN(4) == 0 {
				d.Port = []uint16{22, 53, 123, 5500}[rng.IntN(4)]
			} else {
				d.Port = uint16(rng.IntN(65536))
			}
		}
		want := int32(noRule)
		for i, r := range p.rules {
			if r.matches(&d) {
				want = int32(i)
				break
			}
		}
		if got := p.find(&d, -1); got != want {
			t.Fatalf("%v uid %d: index found rule %d, scan %d", d, d.UID, got, want)
		}
	}
}

func TestDecideAllocatesNothing(t *testing.T) {
	p := mustLoad(t, randomPolicy(200, rand.New(rand.NewPCG(1, 2)))+`
allow unix /run/**/x*.sock
fail tcp 10.0.0.0/8 errno=ECONNREFUSED when=2+2 probability=0.5
allow any exe=/usr/**
`)
	for _, s := range []string{"tcp 10.1.2.3:80", "unix /run/a/b/x1.sock", "tcp [fd00::1]:1", "unspec", "netlink exe=/usr/bin/x"} {
		d := dest(t, s)
		if n := testing.AllocsPerRun(200, func() { p.Decide(d) }); n != 0 {
			t.Errorf("%s: %v allocations per Decide", s, n)
		}
		if n := testing.AllocsPerRun(200, func() { decided(p, d) }); n != 0 {
			t.Errorf("%s: %v allocations per Decide and Count", s, n)
		}
	}
}

func TestConcurrentCounters(t *testing.T) {
	p := mustLoad(t, "fail tcp 10.0.0.1 errno=ECONNREFUSED when=1+3\ndefault allow\n")
	d := dest(t, "tcp 10.0.0.1:80")
	const goroutines, each = 8, 3000
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < each; i++ {
				if decided(p, d).Action == Fail {
					n++
				}
			}
			mu.Lock()
			failed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Connects 1, 4, 7, ...: exactly one in three, whatever the interleaving.
	if want := goroutines * each / 3; failed != want {
		t.Errorf("%d failed, want %d", failed, want)
	}
	if got := p.Rules()[0].Matches(); got != goroutines*each {
		t.Errorf("counter %d", got)
	}
}

// TestDecideIsPure: deciding changes no schedule; only Count does, once
// per call, and a decision of another version of the policy is decided
// again by the one that counts it.
func TestDecideIsPure(t *testing.T) {
	p := mustLoad(t, "fail tcp 10.0.0.1 errno=ECONNREFUSED when=2\ndeny tcp 10.0.0.0/8 errno=EACCES\n")
	d := dest(t, "tcp 10.0.0.1:80")
	for i := 0; i < 3; i++ {
		dec := p.Decide(d)
		if !dec.Pending() || describe(dec) != "fail ECONNREFUSED@1" {
			t.Fatalf("Decide %d: %s pending %v, want the fault, pending", i, describe(dec), dec.Pending())
		}
	}
	if n := p.Rules()[0].Matches(); n != 0 {
		t.Fatalf("Decide counted %d matches", n)
	}
	first := p.Count(d, nil, p.Decide(d))
	second := p.Count(d, nil, p.Decide(d))
	if describe(first) != "deny EACCES@2" || describe(second) != "fail ECONNREFUSED@1" || first.Pending() || second.Pending() {
		t.Errorf("counted: %s then %s, want deny EACCES@2 then fail ECONNREFUSED@1, settled", describe(first), describe(second))
	}
	if again := p.Count(d, nil, second); describe(again) != describe(second) {
		t.Errorf("Count of a settled decision changed it: %s", describe(again))
	}
	q := mustLoad(t, "allow tcp 10.0.0.2\nfail tcp 10.0.0.1 errno=EIO when=1\n")
	if got := q.Count(d, nil, p.Decide(d)); describe(got) != "fail EIO@2" {
		t.Errorf("a decision of another policy counted by q: %s, want fail EIO@2", describe(got))
	}
}
