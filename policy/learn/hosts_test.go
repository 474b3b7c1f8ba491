package learn

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/connvisor/connvisor/policy"
)

// named is conn with the host the decision named, and how.
func named(t testing.TB, dst, exe string, sec int, host string, via policy.HostVia) Conn {
	t.Helper()
	c := conn(t, dst, exe, sec)
	c.Host, c.HostVia = host, via
	return c
}

const dns = policy.ViaAnswer

// hostWorkload is a run that resolved most of what it connected to.
func hostWorkload(t testing.TB) []Conn {
	return []Conn{
		named(t, "tcp 93.184.216.34:443", curl, 1, "api.example.com", dns),
		named(t, "tcp 93.184.216.35:443", curl, 2, "api.example.com", dns), // another address of the name
		named(t, "tcp [2606:2800:220:1::1]:443", curl, 3, "api.example.com", dns),
		named(t, "tcp 93.184.216.34:80", py, 4, "api.example.com", dns), // ports merge
		conn(t, "udp 127.0.0.53:53", py, 5),                             // the resolver: no name
		named(t, "tcp 10.1.2.3:5432", py, 6, "db.corp.example", dns),    // private: allow-private
		named(t, "tcp 203.0.113.9:443", curl, 7, "api.example.com", policy.ViaLoad),
		named(t, "tcp 198.51.100.7:443", curl, 8, "Weird_Name.Example.", dns), // canonical
		named(t, "tcp 198.51.100.8:443", curl, 9, "localhost", dns),           // no dot: an address
		named(t, "tcp 198.51.100.9:443", curl, 10, "bad name.example", dns),   // no rule can hold it
		named(t, "udp 198.51.100.10:443", curl, 11, "quic.example.com", dns),
		named(t, "tcp 151.101.1.1:443", curl, 12, "a.example.org", dns), // one address, two names
		named(t, "tcp 151.101.1.1:443", curl, 13, "b.example.org", dns),
		named(t, "tcp 192.0.2.1:443", py, 14, "cdn.example.net", dns),
		named(t, "tcp 192.0.2.2:443", py, 15, "cdn.example.net", dns),
		named(t, "tcp 192.0.2.3:443", py, 16, "cdn.example.net", dns),
		named(t, "tcp 192.0.2.4:443", py, 17, "cdn.example.net", dns),
		named(t, "tcp 192.0.2.5:443", py, 18, "cdn.example.net", dns),
		named(t, "tcp 192.0.2.6:443", py, 19, "cdn.example.net", dns),
		named(t, "unix /run/app.sock", py, 20, "ignored.example", dns), // names are for inet only
	}
}

func TestWriteHosts(t *testing.T) {
	r := NewRecorder(0)
	for _, c := range hostWorkload(t) {
		r.Add(c)
	}
	got := string(r.Write(Options{Command: []string{"svc"}, NoDates: true}))
	want := `# connvisor policy learned from a run of:
#   svc
# by connvisor learn. Each rule says how often the run used it and by
# which executables.
# Review it (connvisor check FILE), try it without breaking anything
# (connvisor run --audit --policy FILE -- ...), then enforce it.
# Host names are those the run's own DNS answers gave: connvisor matches
# them through the program's answers (as root), else through the addresses
# they resolve to at load (--hosts=never writes addresses instead).

allow tcp a.example.org port 443       # 1 connect; by /usr/bin/curl; seen at 151.101.1.1
allow tcp api.example.com port 80,443  # 4 connects; by /usr/bin/curl, /usr/bin/python3.11; seen at 93.184.216.34, 93.184.216.35, 2606:2800:220:1::1
allow tcp b.example.org port 443       # 1 connect; by /usr/bin/curl; seen at 151.101.1.1
allow tcp cdn.example.net port 443     # 6 connects; by /usr/bin/python3.11; seen at 192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4 and 2 more
allow tcp db.corp.example allow-private port 5432  # 1 connect; by /usr/bin/python3.11; seen at 10.1.2.3
allow tcp weird_name.example port 443  # 1 connect; by /usr/bin/curl; seen at 198.51.100.7
allow udp quic.example.com port 443    # 1 connect; by /usr/bin/curl; seen at 198.51.100.10
allow tcp 198.51.100.8 198.51.100.9 203.0.113.9 port 443  # 3 connects; by /usr/bin/curl
allow udp 127.0.0.53 port 53           # 1 connect; by /usr/bin/python3.11
allow unix /run/app.sock               # 1 connect; by /usr/bin/python3.11

default deny errno=EACCES
`
	if got != want {
		t.Errorf("Write:\n%s\nwant:\n%s", got, want)
	}
	p := loadNamed(t, got)
	// Every call of the run is allowed as the supervisor decides it: with
	// the name its DNS answers gave, else by address.
	for _, c := range hostWorkload(t) {
		if d := decideAs(p, c); d.Action != policy.Allow {
			t.Errorf("%s (host %q via %v): %v by %v", c.Dest, c.Host, c.HostVia, d.Action, d.Rule)
		}
	}
	// The rules are by name: another name with the same address, or the
	// address with no name and not resolved at load, is denied.
	for _, c := range []Conn{
		named(t, "tcp 93.184.216.34:443", curl, 0, "evil.example", dns),
		conn(t, "tcp 93.184.216.35:443", curl, 0),
		named(t, "tcp 93.184.216.34:8080", curl, 0, "api.example.com", dns), // a port it did not use
		named(t, "tcp 127.0.0.1:443", curl, 0, "api.example.com", dns),      // rebinding
		named(t, "udp 198.51.100.10:443", curl, 0, "api.example.com", dns),  // another protocol
	} {
		if d := decideAs(p, c); d.Action != policy.Deny || d.Errno != syscall.EACCES {
			t.Errorf("%s (host %q): %+v, want the default's EACCES", c.Dest, c.Host, d)
		}
	}
}

// With NoHosts, the same run writes addresses only.
func TestWriteNoHosts(t *testing.T) {
	r := NewRecorder(0)
	for _, c := range hostWorkload(t) {
		r.Add(c)
	}
	got := string(r.Write(Options{Command: []string{"svc"}, NoDates: true, NoHosts: true}))
	for _, not := range []string{"example", "allow-private", "seen at", "Host names"} {
		if strings.Contains(got, not) {
			t.Errorf("NoHosts wrote %q:\n%s", not, got)
		}
	}
	for _, want := range []string{
		"allow tcp 93.184.216.34 port 80,443 ",
		"allow tcp 93.184.216.35 151.101.1.1 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6 port 443 ",
		"allow tcp [2606:2800:220:1::1] port 443 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	p := load(t, got)
	for _, c := range hostWorkload(t) {
		if d := decideAs(p, c); d.Action != policy.Allow {
			t.Errorf("%s: %v", c.Dest, d.Action)
		}
	}
}

// PerExe and the order of calls apply to host rules as to addresses.
func TestWriteHostsOptions(t *testing.T) {
	ws := hostWorkload(t)
	got := string(func() []byte {
		r := NewRecorder(0)
		for _, c := range ws {
			r.Add(c)
		}
		return r.Write(Options{PerExe: true, NoDates: true})
	}())
	for _, want := range []string{
		"allow tcp api.example.com port 443 exe=/usr/bin/curl ",
		"allow tcp api.example.com port 80 exe=/usr/bin/python3.11 ",
		"allow tcp db.corp.example allow-private port 5432 exe=/usr/bin/python3.11 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	p := loadNamed(t, got)
	for _, c := range ws {
		c.Dest.Exe = c.Exe
		if d := decideAs(p, c); d.Action != policy.Allow {
			t.Errorf("%s by %s: %v", c.Dest, c.Exe, d.Action)
		}
	}
	// Reversed, the same bytes.
	r := NewRecorder(0)
	for i := len(ws) - 1; i >= 0; i-- {
		r.Add(ws[i])
	}
	if again := string(r.Write(Options{PerExe: true, NoDates: true})); again != got {
		t.Errorf("calls in another order wrote\n%s\nfirst:\n%s", again, got)
	}
}

func TestMergeHosts(t *testing.T) {
	existing := `default deny errno=EACCES
allow udp 127.0.0.53 port 53
allow tcp api.example.com port 443
deny  tcp blocked.example errno=ECONNREFUSED
`
	p := loadNamed(t, existing)
	r := NewRecorder(0)
	for _, c := range []Conn{
		named(t, "tcp 93.184.216.34:443", curl, 1, "api.example.com", dns), // allowed by its name
		named(t, "tcp 93.184.216.34:80", curl, 2, "api.example.com", dns),  // not on this port
		named(t, "tcp 198.51.100.20:443", curl, 3, "blocked.example", dns), // denied on purpose
		named(t, "tcp 198.51.100.21:443", curl, 4, "new.example", dns),
		conn(t, "udp 127.0.0.53:53", curl, 5),
	} {
		r.Add(c)
	}
	m := r.Merge([]byte(existing), p, Options{NoDates: true, Command: []string{"w"}})
	added := strings.Join(m.Added, "\n")
	want := "allow tcp api.example.com port 80  # 1 connect; by /usr/bin/curl; seen at 93.184.216.34\n" +
		"allow tcp new.example port 443     # 1 connect; by /usr/bin/curl; seen at 198.51.100.21"
	if added != want {
		t.Errorf("added:\n%s\nwant:\n%s", added, want)
	}
	if len(m.Refused) != 1 || !strings.Contains(m.Refused[0], "tcp 198.51.100.20:443 (blocked.example) is denied by learned.policy:4") {
		t.Errorf("refused: %q", m.Refused)
	}
	q := loadNamed(t, string(m.Text))
	if again := r.Merge(m.Text, q, Options{NoDates: true}); len(again.Added) != 0 {
		t.Errorf("second merge added %q", again.Added)
	}
}

// FuzzHostName: whatever name a DNS answer gave, the learned file loads,
// has one line per rule, and allows the call as the supervisor decides it.
func FuzzHostName(f *testing.F) {
	for _, s := range []string{"api.example.com", "API.Example.COM.", "localhost", "a b.example", "x.example\nallow any", "10.0.0.1", "private", "*.example.com", "_a._tcp.example", "xn--bcher-kva.example", "a..b"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, host string, v4 bool) {
		dst := "tcp [2001:db8::1]:443"
		if v4 {
			dst = "tcp 10.0.0.1:443"
		}
		c := named(t, dst, "/bin/x", 1, host, dns)
		r := NewRecorder(0)
		r.Add(c)
		text := string(r.Write(Options{NoDates: true}))
		p, err := policy.Load(nil, "f", namedOptions(text))
		if err != nil {
			t.Fatalf("%q: learned file does not load: %v\n%s", host, err, text)
		}
		if n := len(p.Rules()); n != 1 {
			t.Fatalf("%q: %d rules\n%s", host, n, text)
		}
		if d := decideAs(p, c); d.Action != policy.Allow {
			t.Fatalf("%q: %v\n%s", host, d.Action, text)
		}
	})
}

// decideAs decides c as the supervisor enforcing a policy would: with the
// name the run's DNS answers gave for its address, counted once.
func decideAs(p *policy.Policy, c Conn) policy.Decision {
	var names []string
	if c.HostVia == policy.ViaAnswer && c.Dest.Family != syscall.AF_UNIX {
		names = []string{strings.TrimSuffix(strings.ToLower(c.Host), ".")}
	}
	return p.Count(&c.Dest, names, p.DecideNamed(&c.Dest, names))
}

// namedOptions load text with a resolver that knows every name (at one
// address no call of the tests uses), as `connvisor run` would resolve
// the learned names at load.
func namedOptions(text string) policy.Options {
	return policy.Options{
		ReadFile: func(string) ([]byte, error) { return []byte(text), nil },
		Resolve: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("192.0.2.254")}, nil
		},
	}
}

func loadNamed(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(nil, "learned.policy", namedOptions(text))
	if err != nil {
		t.Fatalf("learned policy does not load: %v\n%s", err, text)
	}
	if w := p.Warnings(); len(w) > 0 {
		t.Errorf("learned policy warns: %q", w)
	}
	return p
}
