package policy

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNamedRules(t *testing.T) {
	p := mustLoad(t, `default deny errno=EACCES
dns grace 30s
allow tcp API.Example.com port 443
allow tcp *.cdn.example.net port 443
allow tcp *.corp.example allow-private port 443
allow tcp 203.0.113.7 port 443
deny tcp metadata errno=ENETUNREACH
allow any public port 8443
`)
	if !p.UsesNames() || p.NameGrace() != 30*time.Second {
		t.Fatalf("UsesNames %v, grace %v", p.UsesNames(), p.NameGrace())
	}
	cases := []struct {
		dest  string
		names string // comma-separated learned names, "" for none
		want  string
		host  string
		via   HostVia
	}{
		// Learned names decide; case and trailing dot do not matter.
		{"tcp 198.51.100.1:443", "api.example.com", "allow@3", "api.example.com", ViaAnswer},
		{"tcp 198.51.100.1:443", "a.b.cdn.example.net", "allow@4", "a.b.cdn.example.net", ViaAnswer},
		// The apex is not under its wildcard.
		{"tcp 198.51.100.1:443", "cdn.example.net", "deny EACCES@0", "cdn.example.net", ViaAnswer},
		{"tcp 198.51.100.1:443", "evil.example,api.example.com", "allow@3", "api.example.com", ViaAnswer},
		// A name the policy does not list, with the address api.example.com
		// resolved to at load: denied by name.
		{"tcp 192.0.2.10:443", "evil.example", "deny EACCES@0", "evil.example", ViaAnswer},
		// No answer explains the address: the load-time addresses count.
		{"tcp 192.0.2.10:443", "", "allow@3", "api.example.com", ViaLoad},
		{"tcp [2001:db8::10]:443", "", "allow@3", "api.example.com", ViaLoad},
		// An address rule still allows its address whatever name it has.
		{"tcp 203.0.113.7:443", "evil.example", "allow@6", "evil.example", ViaAnswer},
		// Rebinding: private answers allow nothing without allow-private.
		{"tcp 10.1.2.3:443", "api.example.com", "deny EACCES@0", "api.example.com", ViaAnswer},
		{"tcp 127.0.0.1:443", "x.cdn.example.net", "deny EACCES@0", "x.cdn.example.net", ViaAnswer},
		{"tcp 10.1.2.3:443", "git.corp.example", "allow@5", "git.corp.example", ViaAnswer},
		// Wrong port or protocol.
		{"tcp 198.51.100.1:80", "api.example.com", "deny EACCES@0", "api.example.com", ViaAnswer},
		{"udp 198.51.100.1:443", "api.example.com", "deny EACCES@0", "api.example.com", ViaAnswer},
		// Groups.
		{"tcp 169.254.169.254:80", "", "deny ENETUNREACH@7", "", ViaNone},
		{"tcp 8.8.8.8:8443", "", "allow@8", "", ViaNone},
		{"tcp [2606:4700::1]:8443", "", "allow@8", "", ViaNone},
		{"tcp 192.168.1.1:8443", "", "deny EACCES@0", "", ViaNone},
		{"tcp [fd00::1]:8443", "", "deny EACCES@0", "", ViaNone},
		{"tcp 127.0.0.1:8443", "", "deny EACCES@0", "", ViaNone},
	}
	for _, c := range cases {
		var names []string
		if c.names != "" {
			names = strings.Split(c.names, ",")
		}
		d := p.DecideNamed(dest(t, c.dest), names)
		if got := describe(d); got != c.want || d.Host != c.host || d.HostVia != c.via {
			t.Errorf("%s names %q: %s host %q via %q, want %s host %q via %q", c.dest, c.names, got, d.Host, d.HostVia, c.want, c.host, c.via)
		}
	}
}

func TestResolverSocketsRefused(t *testing.T) {
	named := mustLoad(t, "allow tcp api.example.com port 443\nallow unix\n")
	plain := mustLoad(t, "allow unix\n")
	for _, path := range []string{"/run/nscd/socket", "/run/systemd/resolve/io.systemd.Resolve"} {
		d := &Dest{Family: syscall.AF_UNIX, SockType: syscall.SOCK_STREAM, Path: path}
		if got := decided(named, d); got.Action != Deny || got.Errno != syscall.ENOENT {
			t.Errorf("%s with host names: %+v, want deny ENOENT", path, got)
		}
		if got := decided(plain, d); got.Action != Allow {
			t.Errorf("%s without host names: %+v, want allow", path, got)
		}
	}
}

func TestNamedRuleForms(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"allow tcp *.Example.COM. port 443", "allow tcp *.example.com port 443"},
		{"allow any public port 443", "allow any public port 443"},
		{"deny tcp metadata errno=ENETUNREACH", "deny tcp metadata errno=ENETUNREACH"},
		{"allow tcp db.example.com allow-private", "allow tcp db.example.com allow-private"},
	} {
		p := mustLoad(t, c.in+"\n")
		if got := p.Rules()[0].String(); got != c.want {
			t.Errorf("%q: String %q, want %q", c.in, got, c.want)
		}
		if _, err := Load(nil, "x", withFile(c.want)); err != nil {
			t.Errorf("%q does not parse back: %v", c.want, err)
		}
	}
	for _, bad := range []string{"allow tcp *.*.example.com", "allow tcp *example.com", "allow 10.0.0.1 allow-private", "dns grace forever", "dns grace 1h"} {
		if _, err := Load(nil, "x", withFile(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func withFile(s string) Options {
	o := testOptions(map[string]string{"x": s + "\n"})
	return o
}

func TestComplementPublic(t *testing.T) {
	ps, _ := addrGroup("public")
	in := func(a string) bool {
		for _, p := range ps {
			if p.Contains(netip.MustParseAddr(a)) {
				return true
			}
		}
		return false
	}
	for a, want := range map[string]bool{"1.1.1.1": true, "172.32.0.1": true, "172.31.0.1": false, "169.254.169.254": false,
		"127.0.0.1": false, "::1": false, "2001:db8::1": true, "fe80::1": false, "fd00:ec2::254": false, "255.255.255.255": true} {
		if in(a) != want {
			t.Errorf("public contains %s: %v, want %v", a, !want, want)
		}
	}
}

func BenchmarkDecideNamed(b *testing.B) {
	p, err := Load(nil, "x", withFile("allow tcp api.example.com port 443\nallow tcp *.cdn.example.net port 443\ndefault deny"))
	if err != nil {
		b.Fatal(err)
	}
	d := &Dest{Family: syscall.AF_INET, SockType: syscall.SOCK_STREAM, Addr: netip.MustParseAddr("198.51.100.1"), Port: 443}
	names := []string{"edge.a.cdn.example.net"}
	b.ReportAllocs()
	for b.Loop() {
		if p.DecideNamed(d, names).Action != Allow {
			b.Fatal("denied")
		}
	}
}

// IsHostName: what a rule reads back as a host name, and nothing a rule
// would read as something else.
func TestIsHostName(t *testing.T) {
	for h, want := range map[string]bool{
		"api.example.com":               true,
		"good.test":                     true,
		"_srv._tcp.example":             true, // underscores: the grammar takes them
		"x-1.example":                   true,
		"tcp.example":                   true,  // a keyword as a label is still a name
		"private":                       false, // no dot: an address group
		"localhost":                     false, // no dot: would need a trailing one
		"api.example.com.":              false, // not canonical
		"10.1.2.3":                      false,
		"1.2.3":                         false, // numeric: read as a bad address
		"::1":                           false,
		"*.example.com":                 false,
		"-a.example":                    false,
		"a b.example":                   false,
		"a.example/24":                  false,
		"":                              false,
		strings.Repeat("a.", 127) + "a": false, // 255 bytes
	} {
		if got := IsHostName(h); got != want {
			t.Errorf("IsHostName(%q) = %v, want %v", h, got, want)
		}
		if want {
			if _, err := Load(nil, "x", withFile("allow tcp "+h+" port 1")); err != nil {
				t.Errorf("%q: a rule does not hold it: %v", h, err)
			}
		}
	}
}

// PermitsNamed matches host-name rules through the names, as DecideNamed
// does; Permits through the addresses resolved at load.
func TestPermitsNamed(t *testing.T) {
	p := mustLoad(t, "default deny errno=EACCES\nallow tcp api.example.com port 443\nallow tcp good.test allow-private port 8080\n")
	cases := []struct {
		dest, names string
		want        bool
	}{
		{"tcp 198.51.100.1:443", "api.example.com", true},
		{"tcp 198.51.100.1:443", "", false},             // not resolved at load
		{"tcp 192.0.2.10:443", "", true},                // resolved at load
		{"tcp 192.0.2.10:443", "evil.example", false},   // a learned name decides
		{"tcp 127.2.0.1:8080", "good.test", true},       // allow-private
		{"tcp 127.2.0.1:443", "api.example.com", false}, // rebinding
	}
	for _, c := range cases {
		var names []string
		if c.names != "" {
			names = strings.Split(c.names, ",")
		}
		if ok, _ := p.PermitsNamed(dest(t, c.dest), names); ok != c.want {
			t.Errorf("%s names %q: PermitsNamed %v, want %v", c.dest, c.names, ok, c.want)
		}
	}
}
