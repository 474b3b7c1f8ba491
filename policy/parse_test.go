package policy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

// TestErrors: every error names its place and what was expected.
func TestErrors(t *testing.T) {
	rows := []struct{ text, want string }{
		{"deny tcp 10.0.0.1 errno=ECONREFUSED", `test.policy:1:25: unknown errno "ECONREFUSED" (did you mean ECONNREFUSED?)`},
		{"\n\nfail 127.0.0.1:5432=ECONREFUSED", `test.policy:3:21: unknown errno "ECONREFUSED" (did you mean ECONNREFUSED?)`},
		{"deny 10.0.0.300", `test.policy:1:6: invalid address "10.0.0.300": ParseAddr("10.0.0.300"): IPv4 field has value >255`},
		{"alow tcp 10.0.0.1", `test.policy:1:1: unknown action "alow" (did you mean allow?)`},
		{"frobnicate", `test.policy:1:1: unknown action "frobnicate" (expected allow, deny, log, fail, default, include, resolve, mode or dns)`},
		{"allow tcpp 10.0.0.1", `test.policy:1:7: unknown word "tcpp" (did you mean tcp? a host name without dots would be written with a trailing dot: tcpp.)`},
		{"allow tcp 10.0.0.1 port 99999", `test.policy:1:25: invalid port "99999" (expected a number 0-65535)`},
		{"allow tcp 10.0.0.1 port 90-80", `test.policy:1:25: port range "90-80" is backwards (expected LOW-HIGH)`},
		{"allow tcp 10.0.0.1 port", `test.policy:1:25: port needs a value (like 443, 8000-8100 or 80,443)`},
		{"allow ::1:99999", `test.policy:1:7: "::1:99999": an IPv6 address with a port needs brackets, like [::1]:80`},
		{"allow [::1", `test.policy:1:7: "[::1": missing ']' after the IPv6 address`},
		{"allow tcp /run/x.sock", `test.policy:1:11: "/run/x.sock" cannot be combined with the inet destination at column 7 (one family per rule)`},
		{"allow unix 10.0.0.1", `test.policy:1:12: "10.0.0.1" cannot be combined with the unix destination at column 7 (one family per rule)`},
		{"allow", `test.policy:1:1: allow needs a destination (like 10.0.0.0/8:443, unix:/run/x.sock or any)`},
		{"allow 10.0.0.1 errno=EACCES", `test.policy:1:16: errno does not apply to allow (only to fail and deny)`},
		{"deny 10.0.0.1 when=3", `test.policy:1:15: when does not apply to deny (use fail for injected faults)`},
		{"fail 10.0.0.1", `test.policy:1:1: fail needs errno=NAME or blackhole (like fail 127.0.0.1:5432=ECONNREFUSED)`},
		{"fail 10.0.0.1 errno=EIO blackhole", `test.policy:1:15: fail takes either errno= or blackhole, not both`},
		{"fail 10.0.0.1 errno=EIO timeout=1s", `test.policy:1:25: timeout applies to blackhole only (errno faults answer after delay=)`},
		{"fail 10.0.0.1=EIO:when=0", `test.policy:1:24: invalid when "0" (expected FIRST, FIRST..LAST, FIRST+STEP or FIRST..LAST+STEP, counting from 1)`},
		{"fail 10.0.0.1=EIO:when=5..3", `test.policy:1:24: invalid when "5..3" (expected FIRST, FIRST..LAST, FIRST+STEP or FIRST..LAST+STEP, counting from 1)`},
		{"fail 10.0.0.1=EIO:probability=1.5", `test.policy:1:31: invalid probability "1.5" (expected a number from 0 to 1, like 0.05)`},
		{"fail 10.0.0.1=EIO:frob=1", `test.policy:1:19: unknown option "frob=1" (expected when=, probability=, delay=, timeout=, errno=, after=, for= or every=)`},
		{"allow 10.0.0.1 delay=-1s", `test.policy:1:22: invalid delay "-1s" (expected a duration like 250ms or 2s)`},
		{"allow uid=abc", `test.policy:1:11: invalid uid "abc" (expected a number like 1000 or a range 1000-1999)`},
		{"allow unix /run/[x", `test.policy:1:12: glob "/run/[x": unterminated character class (expected ']')`},
		{"allow unix:run", `test.policy:1:12: unix socket "run": expected a path starting with /, an abstract name starting with @, or unnamed`},
		{"default allow\ndefault deny", `test.policy:2:1: default set twice (first at test.policy:1)`},
		{"default fail", `test.policy:1:9: unknown default action "fail" (expected allow, deny or log)`},
		{"default dney", `test.policy:1:9: unknown default action "dney" (did you mean deny?)`},
		{"default deny=EACESS", `test.policy:1:14: unknown errno "EACESS" (did you mean EACCES?)`},
		{"resolve every 0s", `test.policy:1:15: invalid interval "0s" (expected a duration of at least 1s, like 5m)`},
		{"resolve sometimes", `test.policy:1:9: expected ` + "`resolve every DURATION` (like resolve every 5m) or `resolve never`"},
		{"include", `test.policy:1:1: include takes one file name (include common.policy)`},
		{"include missing.policy", `test.policy:1:9: include: open missing.policy: file does not exist`},
		{"allow tcp udp", `test.policy:1:11: protocol "udp" given twice (first at column 7)`},
		{"allow 10.0.0.1:80 port 443", `test.policy:1:24: ports given twice (first at column 16)`},
		{"allow * 10.0.0.1", `test.policy:1:9: "10.0.0.1" cannot be combined with * (every address)`},
		{"allow fe80::1%eth0", `test.policy:1:7: invalid address "fe80::1%eth0": zones (%iface) are not supported`},
		{"allow exe=", `test.policy:1:11: exe needs a path glob (like exe=/usr/bin/curl)`},
	}
	for _, row := range rows {
		_, err := Load(nil, "test.policy", testOptions(map[string]string{"test.policy": row.text}))
		if err == nil || err.Error() != row.want {
			t.Errorf("%q:\n got  %v\n want %s", row.text, err, row.want)
		}
		var pe *Error
		if err != nil && !errors.As(err, &pe) && !strings.Contains(row.want, "include:") {
			t.Errorf("%q: error is not an *Error", row.text)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	rows := []struct {
		f    FlagRule
		want string
	}{
		{FlagRule{"deny", "10.0.0.300"}, `--deny "10.0.0.300": invalid address "10.0.0.300": ParseAddr("10.0.0.300"): IPv4 field has value >255`},
		{FlagRule{"fail", "127.0.0.1:5432=ECONREFUSED:when=3..4"}, `--fail "127.0.0.1:5432=ECONREFUSED:when=3..4": unknown errno "ECONREFUSED" (did you mean ECONNREFUSED?)`},
		{FlagRule{"alow", "any"}, `unknown flag --alow (did you mean --allow?)`},
		{FlagRule{"default", "maybe"}, `--default "maybe": unknown default action "maybe" (expected allow, deny or log)`},
		{FlagRule{"allow", "nx.example.com:443"}, ``}, // resolves to nothing: a warning, not an error
	}
	for _, row := range rows {
		_, err := Load([]FlagRule{row.f}, "", testOptions(nil))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != row.want {
			t.Errorf("%v:\n got  %s\n want %s", row.f, got, row.want)
		}
	}
	// Several errors are all reported.
	_, err := Load([]FlagRule{{"deny", "1.2.3.4.5"}, {"allow", "unix:x"}}, "", testOptions(nil))
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("want two errors, got %v", err)
	}
	// No resolver, no file reader.
	_, err = Load([]FlagRule{{"allow", "api.example.com:443"}}, "", Options{})
	if err == nil || err.Error() != `--allow "api.example.com:443": host names need a resolver (api.example.com)` {
		t.Errorf("no resolver: %v", err)
	}
	if _, err = Load(nil, "x.policy", Options{}); err == nil || !strings.Contains(err.Error(), "no file reader") {
		t.Errorf("no reader: %v", err)
	}
}

// TestRoundTrip: String and Compact parse back to the same rule, so a rule
// moves between the file and the flags unchanged.
func TestRoundTrip(t *testing.T) {
	lines := []string{
		"allow tcp 10.20.0.0/16 port 5432",
		"allow udp [fd00::/8] port 53",
		"allow tcp api.example.com port 443",
		"deny tcp 169.254.169.254 errno=ENETUNREACH",
		"allow unix /run/postgresql/*",
		"deny unix @*",
		"allow any exe=/usr/bin/curl 127.0.0.0/8",
		"allow unix unnamed",
		"deny netlink",
		"log tcp 0.0.0.0/0 port 443",
		"allow 10.20.0.0/16:5432",
		"allow [::1]:80-90",
		"allow [fd00::/8]",
		"allow *:53",
		"allow any",
		"allow unix:/run/x.sock",
		"allow unix:@name*",
		"deny 127.0.0.1:8080=ECONNREFUSED",
		"fail 127.0.0.1:5432=ECONNREFUSED:when=3..4",
		"fail *:6379=blackhole:when=1+10,timeout=2s",
		"fail 10.0.0.0/8=ENETUNREACH:probability=0.05",
		"fail tcp 10.0.0.1 port 1,2,3 errno=EIO when=2+ delay=1s",
		"fail 10.0.0.1=EIO:when=2..10+3",
		"allow 10.0.0.1:80:delay=100ms",
		"allow uid=1000-2000 10.0.0.0/8 10.1.0.0/16",
		"allow ::ffff:10.0.0.0/104",
		"deny af42",
		"allow unix",
		"allow tcp",
	}
	for _, line := range lines {
		p := mustLoad(t, line)
		r := p.Rules()[0]
		again := mustLoad(t, r.String()).Rules()[0]
		if again.String() != r.String() {
			t.Errorf("%q: String %q parses to %q", line, r.String(), again.String())
		}
		c := r.Compact()
		if c == "" {
			if r.exe == nil && !r.uidSet && len(r.prefixes)+len(r.hosts) < 2 {
				t.Errorf("%q: no compact form", line)
			}
			continue
		}
		flag, value, _ := strings.Cut(strings.TrimPrefix(c, "--"), " ")
		fp, err := Load([]FlagRule{{flag, value}}, "", testOptions(nil))
		if err != nil {
			t.Errorf("%q: compact %q: %v", line, c, err)
			continue
		}
		if got := fp.Rules()[0].String(); got != r.String() {
			t.Errorf("%q: compact %q parses to %q, want %q", line, c, got, r.String())
		}
	}
	if got := mustLoad(t, "default deny=EACCES").DefaultRule().Compact(); got != "--default deny=EACCES" {
		t.Errorf("default compact %q", got)
	}
	if got := mustLoad(t, "deny 127.0.0.1:80=ECONNREFUSED").Rules()[0].Compact(); got != "--deny 127.0.0.1:80=ECONNREFUSED" {
		t.Errorf("compact %q", got)
	}
}

// TestSchedules: when= counts the connects that match the rule, 1-based,
// as strace's inject when= does; the rest fall through.
func TestSchedules(t *testing.T) {
	rows := []struct {
		when string
		want string // which of connects 1..12 fail
	}{
		{"3", "..F........."},
		{"3..4", "..FF........"},
		{"3+", "..FFFFFFFFFF"},
		{"1+10", "F.........F."},
		{"2+3", ".F..F..F..F."},
		{"2..8+3", ".F..F..F...."},
		{"5..5", "....F......."},
	}
	for _, row := range rows {
		p := mustLoad(t, "fail tcp 10.0.0.1 port 80 errno=ECONNREFUSED when="+row.when+"\nallow 10.0.0.0/8\n")
		hit, miss := dest(t, "tcp 10.0.0.1:80"), dest(t, "tcp 10.0.0.1:81")
		var got []byte
		for i := 0; i < 12; i++ {
			decided(p, miss) // does not match the rule: not counted
			d := decided(p, hit)
			switch {
			case d.Action == Fail && d.Errno == syscall.ECONNREFUSED:
				got = append(got, 'F')
			case d.Action == Allow && d.Rule != nil && d.Rule.line == 2:
				got = append(got, '.')
			default:
				t.Fatalf("when=%s: unexpected %+v", row.when, d)
			}
		}
		if string(got) != row.want {
			t.Errorf("when=%s: %s, want %s", row.when, got, row.want)
		}
	}
}

func TestBlackholeAndDelay(t *testing.T) {
	p := mustLoad(t, "fail *:6379=blackhole:timeout=2s,delay=10ms\n")
	d := decided(p, dest(t, "tcp 10.0.0.1:6379"))
	if d.Action != Fail || !d.Blackhole || d.Timeout.String() != "2s" || d.Delay.String() != "10ms" {
		t.Errorf("%+v", d)
	}
}

// TestProbabilityReplay: the same seed and the same connects fail the same
// way; another seed differs; the rate is about right.
func TestProbabilityReplay(t *testing.T) {
	run := func(seed int64) string {
		opts := testOptions(nil)
		opts.Seed = &seed
		p, err := Load([]FlagRule{{"fail", "10.0.0.0/8=ENETUNREACH:probability=0.25"}, {"default", "allow"}}, "", opts)
		if err != nil {
			t.Fatal(err)
		}
		if p.Seed() != seed {
			t.Fatalf("seed %d", p.Seed())
		}
		d := dest(t, "tcp 10.1.1.1:80")
		var b []byte
		for i := 0; i < 2000; i++ {
			if decided(p, d).Action == Fail {
				b = append(b, 'F')
			} else {
				b = append(b, '.')
			}
		}
		return string(b)
	}
	a, b, c := run(1), run(1), run(2)
	if a != b {
		t.Error("same seed, different failures")
	}
	if a == c {
		t.Error("different seeds, same failures")
	}
	if n := strings.Count(a, "F"); n < 400 || n > 600 {
		t.Errorf("%d of 2000 failed at probability 0.25", n)
	}
	// Without a seed, one is chosen and reported.
	now := Options{Now: testOptions(nil).Now}
	p, err := Load(nil, "", now)
	if err != nil || p.Seed() < 0 {
		t.Errorf("chosen seed %d, %v", p.Seed(), err)
	}
}

func TestInclude(t *testing.T) {
	files := map[string]string{
		"etc/main.policy":        "include common/base.policy\nallow 10.0.0.0/8\n",
		"etc/common/base.policy": "deny 10.1.0.0/16\ninclude more.policy\n",
		"etc/common/more.policy": "deny 10.2.0.0/16 errno=EACCES\n",
		"cyc/a.policy":           "include b.policy\n",
		"cyc/b.policy":           "allow any\ninclude a.policy\n",
	}
	p, err := Load(nil, "etc/main.policy", testOptions(files))
	if err != nil {
		t.Fatal(err)
	}
	var origins []string
	for _, r := range p.Rules() {
		origins = append(origins, r.Origin())
	}
	if got := strings.Join(origins, " "); got != "etc/common/base.policy:1 etc/common/more.policy:1 etc/main.policy:2" {
		t.Errorf("origins %s", got)
	}
	_, err = Load(nil, "cyc/a.policy", testOptions(files))
	if err == nil || err.Error() != "cyc/b.policy:2:9: include cycle: cyc/a.policy -> cyc/b.policy -> cyc/a.policy" {
		t.Errorf("cycle: %v", err)
	}
	files["self.policy"] = "include self.policy"
	if _, err = Load(nil, "self.policy", testOptions(files)); err == nil || !strings.Contains(err.Error(), "include cycle: self.policy -> self.policy") {
		t.Errorf("self include: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	p := mustLoad(t, `allow tcp 10.0.0.0/8
deny tcp 10.1.0.0/16 port 443
allow any 10.0.0.0/8
allow udp 10.0.0.1 port 53
fail tcp 192.168.0.0/16 errno=EIO when=2
deny tcp 192.168.1.1
allow unix /run/*
deny unix /run/x.sock
allow tcp nx.example.com port 443
deny tcp api.example.com port 25
default allow
`)
	want := []string{
		`test.policy:9: host name "nx.example.com" did not resolve: no such host`,
		"test.policy:2: rule `deny tcp 10.1.0.0/16 port 443` can never match: covered by test.policy:1 `allow tcp 10.0.0.0/8`",
		"test.policy:4: rule `allow udp 10.0.0.1 port 53` can never match: covered by test.policy:3 `allow any 10.0.0.0/8`",
		"test.policy:8: rule `deny unix /run/x.sock` can never match: covered by test.policy:7 `allow unix /run/*`",
		"test.policy:10: default allow combined with deny on host names (api.example.com): a connect to an address no DNS answer of the program explains (hard-coded, resolved over DNS over TLS/HTTPS, or any new address when connvisor cannot capture DNS answers) is allowed; prefer default deny with allow rules",
	}
	got := p.Warnings()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPrependSharesCounters(t *testing.T) {
	p := mustLoad(t, "fail tcp 10.0.0.1 errno=ECONNREFUSED when=3\ndefault allow\n")
	d := dest(t, "tcp 10.0.0.1:80")
	decided(p, d) // match 1
	decided(p, d) // match 2
	q, err := p.Prepend(FlagRule{"fail", "10.0.0.1=ETIMEDOUT:when=1..2"})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for i := 0; i < 4; i++ {
		got = append(got, describe(decided(q, d)))
	}
	// The new rule fails the next two; then the old rule, shared, sees its
	// third match.
	want := "fail ETIMEDOUT@0 fail ETIMEDOUT@0 fail ECONNREFUSED@1 allow@0"
	if strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
	if q.Rules()[1] != p.Rules()[0] {
		t.Error("rule not shared")
	}
	if q.Rules()[0].Origin() != "--fail" {
		t.Errorf("origin %s", q.Rules()[0].Origin())
	}
	if _, err := p.Prepend(FlagRule{"fail", "10.0.0.1"}); err == nil {
		t.Error("bad prepend accepted")
	}
}

func TestReresolve(t *testing.T) {
	p := mustLoad(t, "resolve every 5m\nfail tcp db.example.com errno=EIO when=2\nallow 10.0.0.0/8\ndefault allow\n")
	if p.ResolveInterval().String() != "5m0s" {
		t.Errorf("interval %v", p.ResolveInterval())
	}
	d := dest(t, "tcp 10.9.9.9:5432")
	decided(p, d) // match 1 of the fail rule
	moved := testOptions(nil)
	moved.Resolve = func(ctx context.Context, h string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.8.8.8")}, nil
	}
	q, changes, err := p.Reresolve(context.Background(), moved)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(changes, ";") != "db.example.com (test.policy:2): [10.9.9.9] -> [10.8.8.8]" {
		t.Errorf("changes %q", changes)
	}
	if q.Rules()[1] != p.Rules()[1] {
		t.Error("rule without names not shared")
	}
	if got := describe(decided(q, dest(t, "tcp 10.8.8.8:1"))); got != "fail EIO@2" {
		t.Errorf("after move: %s (the counter should carry over)", got)
	}
	if got := describe(decided(q, d)); got != "allow@3" {
		t.Errorf("old address: %s", got)
	}
	// A failed lookup keeps the addresses.
	broken := testOptions(nil)
	broken.Resolve = func(ctx context.Context, h string) ([]netip.Addr, error) { return nil, errors.New("timeout") }
	r, changes, err := q.Reresolve(context.Background(), broken)
	if err != nil || len(changes) != 1 || !strings.Contains(changes[0], "lookup failed, keeping [10.8.8.8]") {
		t.Errorf("%q %v", changes, err)
	}
	if r.Rules()[0].Addresses()[0].String() != "10.8.8.8/32" {
		t.Errorf("addresses %v", r.Rules()[0].Addresses())
	}
}

func TestParseDest(t *testing.T) {
	for _, s := range []string{"tcp 10.20.3.4:5432", "udp [::1]:53", "ip 10.0.0.1:80", "unix /run/x.sock", "unix @abstract", "unix unnamed", "unspec", "netlink", "vsock"} {
		d, err := ParseDest(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if d.String() != s {
			t.Errorf("%s: String %s", s, d.String())
		}
	}
	d, err := ParseDest("tcp 10.0.0.1:80 exe=/usr/bin/curl uid=1000")
	if err != nil || d.Exe != "/usr/bin/curl" || d.UID != 1000 {
		t.Errorf("%+v %v", d, err)
	}
	for _, s := range []string{"", "tcp", "tcp 10.0.0.1", "unix", "unix x", "frob 1", "tcp 1.2.3.4:5 foo=bar", "tcp 1.2.3.4:5 uid=x"} {
		if _, err := ParseDest(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestErrno(t *testing.T) {
	for name, want := range map[string]syscall.Errno{"ECONNREFUSED": syscall.ECONNREFUSED, "econnreset": syscall.ECONNRESET, "EWOULDBLOCK": syscall.EAGAIN, "EHWPOISON": 133} {
		if got, err := ParseErrno(name); err != nil || got != want {
			t.Errorf("%s: %v %v", name, got, err)
		}
	}
	if ErrnoName(syscall.ETIMEDOUT) != "ETIMEDOUT" || ErrnoName(9999) != "errno 9999" {
		t.Error("ErrnoName")
	}
	if _, err := ParseErrno("ETIMEOUT"); err == nil || err.Error() != `unknown errno "ETIMEOUT" (did you mean ETIMEDOUT?)` {
		t.Error(err)
	}
	if _, err := ParseErrno("banana"); err == nil || !strings.Contains(err.Error(), "expected a Linux errno name") {
		t.Error(err)
	}
}

func TestGlob(t *testing.T) {
	rows := []struct {
		pat, name string
		abstract  bool
		want      bool
	}{
		{"/run/*", "/run/x", false, true},
		{"/run/*", "/run/x/y", false, false},
		{"/run/**", "/run/x/y", false, true},
		{"/run/**/s.sock", "/run/a/b/s.sock", false, true},
		{"/run/?.sock", "/run/a.sock", false, true},
		{"/run/?.sock", "/run/ab.sock", false, false},
		{"/run/[a-c].sock", "/run/b.sock", false, true},
		{"/run/[!a-c].sock", "/run/b.sock", false, false},
		{"/run/\\*", "/run/*", false, true},
		{"/run/\\*", "/run/x", false, false},
		{"*", "/tmp/.X11-unix/X0", true, true},
		{"name*", "name/x", true, true},
		{"*a*a*a*a*a*a*a*b", strings.Repeat("a", 4000), false, false},
	}
	for _, row := range rows {
		g, err := compileGlob(row.pat, row.abstract)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.match(row.name); got != row.want {
			t.Errorf("%q ~ %q = %v", row.pat, row.name, got)
		}
	}
}
