package policy

import (
	"strings"
	"testing"
)

// auditText has a rule of every action and a denying default.
const auditText = `mode audit
default deny errno=EACCES
allow tcp 10.0.0.0/8 port 443
deny tcp 169.254.169.254 errno=ENETUNREACH
fail tcp 127.0.0.1 port 5432 errno=ECONNREFUSED delay=1s
fail tcp 127.0.0.1 port 6379 blackhole
fail udp 127.0.0.1 port 53 errno=EIO when=2
log tcp 192.0.2.0/24
allow tcp 198.51.100.7 delay=250ms
`

// TestAuditMode: deny and fail rules and the default allow, saying what
// they would have answered; everything else decides as enforced.
func TestAuditMode(t *testing.T) {
	p := mustLoad(t, auditText)
	if !p.Audit() {
		t.Fatal("mode audit did not set audit mode")
	}
	if p.AllowsEverything() {
		t.Fatal("an audit policy with denying rules counts as allow-all: side doors would open")
	}
	rows := []struct {
		dest, want string
	}{
		{"tcp 10.1.2.3:443", "allow@3"},
		{"tcp 169.254.169.254:80", "would-deny ENETUNREACH@4"},
		{"tcp 127.0.0.1:5432", "would-deny ECONNREFUSED@5"}, // no delay: nothing is injected
		{"tcp 127.0.0.1:6379", "would-deny blackhole@6"},
		{"udp 127.0.0.1:53", "would-deny EACCES@0"}, // when=2: the first falls through
		{"udp 127.0.0.1:53", "would-deny EIO@7"},
		{"tcp 192.0.2.9:80", "log@8"},
		{"tcp 198.51.100.7:80", "allow@9 delay=250ms"},
		{"tcp 8.8.8.8:80", "would-deny EACCES@0"},
		{"unspec", "allow@0"},
	}
	for _, r := range rows {
		d := decided(p, dest(t, r.dest))
		if got := describeAudit(d); got != r.want {
			t.Errorf("%s: %s, want %s", r.dest, got, r.want)
		}
	}
}

func describeAudit(d Decision) string {
	if !d.WouldDeny {
		s := describe(d)
		if d.Delay > 0 {
			s += " delay=" + d.Delay.String()
		}
		return s
	}
	s := "would-deny "
	switch {
	case d.Action != Allow:
		return "would-deny with action " + d.Action.String()
	case d.Rule != nil && d.Rule.Decision().Blackhole:
		s += "blackhole"
	default:
		s += ErrnoName(d.WouldErrno)
	}
	line := 0
	if d.Rule != nil {
		line = d.Rule.line
	}
	s += "@" + itoa(line)
	if d.Delay != 0 || d.Errno != 0 || d.Blackhole {
		s += " but injects something"
	}
	return s
}

// TestAuditFromOptions: Options.Audit works without a mode line, survives
// Prepend, and `mode enforce` is the default.
func TestAuditFromOptions(t *testing.T) {
	opts := testOptions(map[string]string{"p": "mode enforce\nallow tcp 10.0.0.1\n"})
	p, err := Load(nil, "p", opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Audit() {
		t.Fatal("mode enforce is in audit mode")
	}
	if got := describe(decided(p, dest(t, "tcp 10.0.0.2:1"))); got != "deny EPERM@0" {
		t.Errorf("enforced: %s", got)
	}
	opts.Audit = true
	if p, err = Load(nil, "p", opts); err != nil {
		t.Fatal(err)
	}
	q, err := p.Prepend(FlagRule{"deny", "10.0.0.1=ECONNREFUSED"})
	if err != nil {
		t.Fatal(err)
	}
	d := decided(q, dest(t, "tcp 10.0.0.1:1"))
	if !d.WouldDeny || d.Action != Allow || ErrnoName(d.WouldErrno) != "ECONNREFUSED" {
		t.Errorf("audit lost by Prepend: %+v", d)
	}
}

func TestModeErrors(t *testing.T) {
	for text, want := range map[string]string{
		"mode audit\nmode enforce": "test.policy:2:1: mode set twice",
		"mode":                     "test.policy:1:1: expected `mode audit`",
		"mode learn":               "test.policy:1:6: expected `mode audit`",
		"mdoe audit":               "did you mean mode?",
	} {
		_, err := Load(nil, "test.policy", testOptions(map[string]string{"test.policy": text}))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}

// TestPermits answers the enforced question without counting.
func TestPermits(t *testing.T) {
	p := mustLoad(t, auditText)
	for dst, want := range map[string]bool{
		"tcp 10.1.2.3:443":       true,
		"tcp 10.1.2.3:80":        false, // the default
		"tcp 169.254.169.254:80": false,
		"tcp 127.0.0.1:5432":     false, // unscheduled fault
		"udp 127.0.0.1:53":       false, // passes the when=2 rule, then the default
		"tcp 192.0.2.9:80":       true,  // log
		"unspec":                 true,
	} {
		for range 3 { // asking again changes nothing
			if got, _ := p.Permits(dest(t, dst)); got != want {
				t.Errorf("Permits(%s) = %v, want %v", dst, got, want)
			}
		}
	}
	if p.rules[4].Matches() != 0 {
		t.Errorf("Permits counted a match of a fault schedule")
	}
	allow := mustLoad(t, "default allow\ndeny tcp 10.0.0.1\n")
	if ok, by := allow.Permits(dest(t, "tcp 10.0.0.2:1")); !ok || by != nil {
		t.Errorf("default allow: %v by %v", ok, by)
	}
	if ok, by := allow.Permits(dest(t, "tcp 10.0.0.1:1")); ok || by == nil || by.line != 2 {
		t.Errorf("deny rule: %v by %v", ok, by)
	}
}
