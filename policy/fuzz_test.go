package policy

import (
	"strings"
	"testing"
)

// FuzzParse: no input panics or hangs, errors carry a place, and a policy
// that loads prints rules that load again to the same rules.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"default deny errno=EACCES\nallow tcp 10.20.0.0/16 port 5432\n",
		"allow udp [fd00::/8] port 53 # dns",
		"allow tcp api.example.com port 443",
		"deny tcp 169.254.169.254 errno=ENETUNREACH",
		"allow unix /run/postgresql/*\ndeny unix @*\nallow unix unnamed",
		"allow any exe=/usr/bin/curl 127.0.0.0/8 uid=0-10",
		"fail 127.0.0.1:5432=ECONNREFUSED:when=3..4",
		"fail *:6379=blackhole:when=1+10,timeout=2s",
		"fail 10.0.0.0/8=ENETUNREACH:probability=0.05",
		"allow [::1]:80-90,100\nresolve every 5m\ndeny netlink\ninclude other.policy",
		"allow unix:/[a-",
		"fail tcp:[::ffff:1.2.3.4/120]:1=EIO:when=1..2+3,delay=1ms",
		"fail 127.0.0.1:5432=ECONNREFUSED:after=5s,every=30s,for=5s,when=2+",
		"fail tcp 10.0.0.1 port 80 blackhole for=1h30m probability=0.5 after=0s",
		"dns grace 30s\nallow tcp *.Example.com. db.example.com allow-private port 443",
		"deny any metadata errno=ENETUNREACH\nallow any public port 443\nallow loopback private link-local",
		"allow tcp:*.cdn.example:443\ndeny *.x.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		files := map[string]string{"test.policy": text, "other.policy": "include test.policy\nallow 10.0.0.1"}
		p, err := Load(nil, "test.policy", testOptions(files))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "test.policy:") && !strings.HasPrefix(err.Error(), "other.policy:") {
				t.Fatalf("error without a place: %v", err)
			}
			return
		}
		p.Warnings()
		for _, r := range p.Rules() {
			again, err := Load(nil, "again", testOptions(map[string]string{"again": r.String()}))
			if err != nil {
				t.Fatalf("%q prints as %q, which does not load: %v", text, r.String(), err)
			}
			if got := again.Rules()[0].String(); got != r.String() {
				t.Fatalf("%q prints as %q, which loads as %q", text, r.String(), got)
			}
			if c := r.Compact(); c != "" {
				flag, value, _ := strings.Cut(strings.TrimPrefix(c, "--"), " ")
				fp, err := Load([]FlagRule{{flag, value}}, "", testOptions(nil))
				if err != nil {
					t.Fatalf("%q: compact %q does not load: %v", text, c, err)
				}
				if got := fp.Rules()[0].String(); got != r.String() {
					t.Fatalf("%q: compact %q loads as %q, want %q", text, c, got, r.String())
				}
			}
		}
	})
}

// FuzzDecide: any destination against a policy with every kind of rule
// decides without panicking, and agrees with a linear scan.
func FuzzDecide(f *testing.F) {
	f.Add("tcp 10.20.3.4:5432 uid=5")
	f.Add("unix /run/postgresql/x")
	f.Add("unix @x/y")
	f.Add("udp [fd00::1]:53")
	f.Add("unspec")
	p := mustLoad(f, `allow tcp 10.20.0.0/16 port 5432
allow udp [fd00::/8] port 53
allow unix /run/**/*.sock
deny unix @a*b?c[d-f]
allow any exe=/usr/*/curl uid=1-9 127.0.0.0/8
deny netlink
allow *:80,443
allow any
`)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDest(s)
		if err != nil {
			return
		}
		got := p.find(&d, -1)
		want := int32(noRule)
		for i, r := range p.rules {
			if r.matches(&d) {
				want = int32(i)
				break
			}
		}
		if got != want {
			t.Fatalf("%v: index %d, scan %d", d, got, want)
		}
		decided(p, &d)
	})
}
