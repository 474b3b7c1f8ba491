package learn

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/policy"
)

func TestGeneralisePath(t *testing.T) {
	rows := []struct{ path, want string }{
		{"/tmp/tmp.k3j2/sock", "/tmp/*/sock"},                            // mktemp -d
		{"/run/user/1000/bus", "/run/user/1000/bus"},                     // the uid stays
		{"/var/run/user/0/pulse/native", "/var/run/user/0/pulse/native"}, // so does root's
		{"/tmp/TestLearn123456/001/sock", "/tmp/*/*/sock"},               // t.TempDir
		{"/tmp/.X11-unix/X0", "/tmp/.X11-unix/X*"},                       // fixed X11 directory
		{"/tmp/mysql.sock", "/tmp/mysql.sock"},
		{"/tmp/tmpq8x_2k1z", "/tmp/tmp*"}, // tempfile.mktemp
		{"/var/tmp/app/s.sock", "/var/tmp/*/s.sock"},
		{"/dev/shm/x/y/z", "/dev/shm/*/*/z"},
		{"/run/app/worker-3.sock", "/run/app/worker-*.sock"},
		{"/run/app/sock.4711", "/run/app/sock.*"},
		{"/run/app/3fa9c2e1.sock", "/run/app/*.sock"}, // random hex
		{"/run/php/php8.2-fpm.sock", "/run/php/php*.*-fpm.sock"},
		{"/var/run/postgresql/.s.PGSQL.5432", "/var/run/postgresql/.s.PGSQL.*"},
		{"/run/systemd/journal/socket", "/run/systemd/journal/socket"},
		{"/run/a*b?[c]\\d", `/run/a\*b\?\[c]\\d`},  // metacharacters escaped
		{"/run/a b\tc\nd", "/run/a?b?c?d"},         // blanks a line cannot hold
		{"/run/caf\xc3\xa9", "/run/caf\xc3\xa9"},   // UTF-8 kept
		{"/run/bad\xff\xfe", "/run/bad??"},         // invalid UTF-8 is not
		{"/srv/sock", "/srv/sock"},                 // nothing to generalise
		{"/tmp", "/tmp"},                           // the root itself
		{"/home/u/tmp/x1", "/home/u/tmp/x*"},       // only real temp roots
		{"/scratch/job42/sock", "/scratch/*/sock"}, // an extra root ($TMPDIR)
		{"/scratch", "/scratch"},                   // with nothing below
		{"relative/sock9", "relative/sock*"},       // not absolute: words only
		{"/run/user/1000/app-77/s", "/run/user/1000/app-*/s"},
	}
	for _, r := range rows {
		if got := GeneralisePath(r.path, []string{"/scratch/"}); got != r.want {
			t.Errorf("GeneralisePath(%q) = %q, want %q", r.path, got, r.want)
		}
	}
}

func TestGeneraliseAbstract(t *testing.T) {
	rows := []struct{ name, want string }{
		{"/tmp/dbus-k3j2x9", "/tmp/dbus-*"},
		{"/org/kernel/udev/udevd", "/org/kernel/udev/udevd"},
		{"xtables", "xtables"},
		{"connvisor-test-12345", "connvisor-test-*"},
		{"0a1b2", "*"}, // autobind's five hex digits
		{"a\x00b", "a?b"},
		{"app.4242/ctl", "app.*/ctl"},
	}
	for _, r := range rows {
		if got := GeneraliseAbstract(r.name, nil); got != r.want {
			t.Errorf("GeneraliseAbstract(%q) = %q, want %q", r.name, got, r.want)
		}
	}
}

var t0 = time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)

// conn builds a Conn from "tcp 127.0.0.1:80" (policy.ParseDest's form),
// an executable and seconds after t0.
func conn(t testing.TB, dst, exe string, sec int) Conn {
	t.Helper()
	d, err := policy.ParseDest(dst)
	if err != nil {
		t.Fatal(err)
	}
	return Conn{Dest: d, Exe: exe, Time: t0.Add(time.Duration(sec) * time.Second)}
}

const curl, py = "/usr/bin/curl", "/usr/bin/python3.11"

func workload(t testing.TB) []Conn {
	return []Conn{
		conn(t, "tcp 127.0.0.1:8003", curl, 1),
		conn(t, "tcp 127.0.0.1:8001", curl, 2),
		conn(t, "tcp 127.0.0.1:8002", py, 3),
		conn(t, "tcp 127.0.0.1:8001", py, 4),
		conn(t, "tcp 127.0.0.1:9000", py, 5),
		conn(t, "udp 127.0.0.53:53", py, 6),
		conn(t, "tcp [::ffff:127.0.0.1]:8001", curl, 7), // IPv4-mapped: IPv4
		conn(t, "tcp [::1]:8001", curl, 8),
		conn(t, "tcp 127.0.0.2:9000", py, 9), // same ports as 127.0.0.1? no: 127.0.0.1 has more
		conn(t, "tcp 10.1.2.3:443", curl, 10),
		conn(t, "tcp 10.1.2.4:443", curl, 11), // shares 10.1.2.3's rule
		conn(t, "unix /tmp/tmp.k3j2/sock", py, 12),
		conn(t, "unix /tmp/tmp.zz99/sock", curl, 13), // the same glob
		conn(t, "unix /run/user/1000/bus", py, 14),
		conn(t, "unix @connvisor-test-4242", py, 15),
		conn(t, "unix unnamed", py, 16),
		conn(t, "netlink", py, 17),
		conn(t, "netlink kernel", py, 18), // no egress: no rule
		conn(t, "unspec", py, 19),         // no egress either
	}
}

func TestWrite(t *testing.T) {
	r := NewRecorder(0)
	for _, c := range workload(t) {
		r.Add(c)
	}
	send := conn(t, "udp 127.0.0.53:53", py, 20)
	send.Send = true
	r.Add(send)
	got := string(r.Write(Options{Command: []string{"sh", "-c", "curl x; python3 y"}, Now: t0.Add(time.Minute)}))
	want := `# connvisor policy learned from a run of:
#   sh -c 'curl x; python3 y'
# by connvisor learn, 2026-12-02T07:01:00Z. Each rule says how often the run
# used it, by which executables, first and last seen.
# Review it (connvisor check FILE), try it without breaking anything
# (connvisor run --audit --policy FILE -- ...), then enforce it.

allow tcp 10.1.2.3 10.1.2.4 port 443     # 2 connects; by /usr/bin/curl; first 2026-12-02T07:00:10Z, last 2026-12-02T07:00:11Z
allow tcp 127.0.0.1 port 8001-8003,9000  # 6 connects; by /usr/bin/curl, /usr/bin/python3.11; first 2026-12-02T07:00:01Z, last 2026-12-02T07:00:07Z
allow tcp 127.0.0.2 port 9000            # 1 connect; by /usr/bin/python3.11; first 2026-12-02T07:00:09Z, last 2026-12-02T07:00:09Z
allow udp 127.0.0.53 port 53             # 1 connect, 1 send; by /usr/bin/python3.11; first 2026-12-02T07:00:06Z, last 2026-12-02T07:00:20Z
allow tcp [::1] port 8001                # 1 connect; by /usr/bin/curl; first 2026-12-02T07:00:08Z, last 2026-12-02T07:00:08Z
allow unix /run/user/1000/bus            # 1 connect; by /usr/bin/python3.11; first 2026-12-02T07:00:14Z, last 2026-12-02T07:00:14Z
allow unix /tmp/*/sock                   # 2 connects; by /usr/bin/curl, /usr/bin/python3.11; first 2026-12-02T07:00:12Z, last 2026-12-02T07:00:13Z
allow unix @connvisor-test-*             # 1 connect; by /usr/bin/python3.11; first 2026-12-02T07:00:15Z, last 2026-12-02T07:00:15Z
allow unix unnamed                       # 1 connect; by /usr/bin/python3.11; first 2026-12-02T07:00:16Z, last 2026-12-02T07:00:16Z
allow netlink                            # 1 connect; by /usr/bin/python3.11; first 2026-12-02T07:00:17Z, last 2026-12-02T07:00:17Z

default deny errno=EACCES
`
	if got != want {
		t.Errorf("Write:\n%s\nwant:\n%s", got, want)
	}
	// The file is a policy that allows every destination of the run and
	// denies the rest with EACCES.
	p := load(t, got)
	for _, c := range workload(t) {
		if d := p.Decide(&c.Dest); d.Action != policy.Allow {
			t.Errorf("%s: %v", c.Dest, d.Action)
		}
	}
	for _, other := range []string{"tcp 127.0.0.1:8004", "udp 127.0.0.1:8001", "tcp 127.0.0.2:8001", "unix /tmp/a/b/sock", "unix @other"} {
		d := p.Decide(dest(t, other))
		if d.Action != policy.Deny || d.Errno != syscall.EACCES || d.Rule != nil {
			t.Errorf("%s: %+v, want the default's EACCES", other, d)
		}
	}
}

func TestWriteOptions(t *testing.T) {
	r := NewRecorder(0)
	for _, c := range workload(t) {
		r.Add(c)
	}
	got := string(r.Write(Options{PerExe: true, CollapseIPv4: 24, CollapseIPv6: 64, NoDates: true, Command: []string{"w"}}))
	for _, want := range []string{
		"# by connvisor learn. Each rule says how often the run used it and by\n",
		"allow tcp 10.1.2.0/24 port 443 exe=/usr/bin/curl ",
		"allow tcp 127.0.0.0/24 port 8001  ", // both used 8001
		"allow tcp 127.0.0.0/24 port 8002,9000 exe=/usr/bin/python3.11 ",
		"allow tcp 127.0.0.0/24 port 8003 exe=/usr/bin/curl ",
		"allow tcp [::/64] port 8001 exe=/usr/bin/curl ",
		"allow unix /tmp/*/sock  ", // two executables: no exe=
		"allow unix @connvisor-test-* exe=/usr/bin/python3.11",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "first ") || strings.Contains(got, "2026") {
		t.Errorf("NoDates left a date:\n%s", got)
	}
	load(t, got)
}

// The same calls in any order, from any number of goroutines, write the
// same bytes.
func TestWriteDeterministic(t *testing.T) {
	ws := workload(t)
	var first string
	for i := range 10 {
		r := NewRecorder(0)
		done := make(chan bool)
		for g := range 4 {
			go func() {
				for j := range ws {
					r.Add(ws[(j*7+i+g*5)%len(ws)])
				}
				done <- true
			}()
		}
		for range 4 {
			<-done
		}
		got := string(r.Write(Options{Now: t0, Command: []string{"x"}}))
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("run %d wrote\n%s\nrun 0 wrote\n%s", i, got, first)
		}
	}
}

// TestBounded: 100,000 distinct destinations keep the limit's worth, and
// the file says what was left out.
func TestBounded(t *testing.T) {
	r := NewRecorder(1000)
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		r.Add(Conn{Dest: policy.Dest{Family: syscall.AF_INET, SockType: syscall.SOCK_DGRAM, Addr: a, Port: 53}, Exe: "/bin/x", Time: t0})
	}
	r.Add(conn(t, "udp 10.0.0.1:53", "/bin/x", 1)) // already known: still counted
	if r.Len() != 1000 || r.Dropped() != 99000 {
		t.Fatalf("kept %d, dropped %d; want 1000 and 99000", r.Len(), r.Dropped())
	}
	got := string(r.Write(Options{NoDates: true}))
	if !strings.Contains(got, "# TRUNCATED: the run reached more than 1000 distinct destinations") ||
		!strings.Contains(got, "(99000 udp)") {
		t.Errorf("no truncation note:\n%.1500s", got)
	}
	if !strings.Contains(got, "allow udp 10.0.0.0 10.0.0.1 ") || !strings.Contains(got, "port 53  # 9 connects; by /bin/x\n") {
		t.Errorf("known destination lost its count:\n%.1500s", got)
	}
	load(t, got)
}

func TestMerge(t *testing.T) {
	existing := `# my service
default deny errno=EACCES
allow tcp 127.0.0.1 port 8001            # the API
deny  tcp 10.0.0.0/8 errno=ENETUNREACH
allow unix /tmp/*/sock`
	p, err := policy.Load(nil, "svc.policy", policy.Options{ReadFile: func(string) ([]byte, error) { return []byte(existing), nil }})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(0)
	for _, c := range workload(t) {
		r.Add(c)
	}
	m := r.Merge([]byte(existing), p, Options{NoDates: true, Command: []string{"w"}})
	text := string(m.Text)
	if !strings.HasPrefix(text, existing+"\n") {
		t.Fatalf("existing text rewritten:\n%s", text)
	}
	added := strings.Join(m.Added, "\n")
	for _, want := range []string{"allow tcp 127.0.0.1 port 8002-8003,9000 ", "allow udp 127.0.0.53 port 53", "allow tcp [::1] port 8001", "allow unix /run/user/1000/bus"} {
		if !strings.Contains(added, want) {
			t.Errorf("added lacks %q:\n%s", want, added)
		}
	}
	for _, not := range []string{"10.1.2", "/tmp/*/sock"} {
		if strings.Contains(added, not) {
			t.Errorf("added %q, which the policy denies on purpose or allows:\n%s", not, added)
		}
	}
	if len(m.Refused) != 2 || !strings.Contains(m.Refused[0], "tcp 10.1.2.3:443 is denied by svc.policy:4") {
		t.Errorf("refused: %q", m.Refused)
	}
	// The merged file allows the whole workload but what a rule denies,
	// and merging again adds nothing.
	q := load(t, text)
	for _, c := range workload(t) {
		if d := q.Decide(&c.Dest); d.Action != policy.Allow && !strings.HasPrefix(c.Dest.Addr.String(), "10.") {
			t.Errorf("%s: %v after the merge", c.Dest, d.Action)
		}
	}
	again := r.Merge(m.Text, q, Options{NoDates: true})
	if len(again.Added) != 0 || string(again.Text) != text {
		t.Errorf("second merge added %q", again.Added)
	}
}

// FuzzGeneralise: every glob written for a path or abstract name loads as
// one rule on one line and allows that very name.
func FuzzGeneralise(f *testing.F) {
	for _, s := range []string{"/tmp/tmp.k3j2/sock", "/run/user/1000/bus", "/a*b?[c]\\", "/x y\n#z", "@abc", "/tmp/\xff", "0a1b2", "/run/[!a-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" || len(name) > 107 {
			return // no such socket name
		}
		check := func(glob string, d policy.Dest) {
			word := glob
			if d.Abstract {
				word = "@" + glob
			}
			text := "allow unix " + word + "\n"
			if strings.Count(text, "\n") != 1 {
				t.Fatalf("%q: glob %q spans lines", name, glob)
			}
			p, err := policy.Load(nil, "f", policy.Options{ReadFile: func(string) ([]byte, error) { return []byte(text), nil }})
			if err != nil {
				t.Fatalf("%q: glob %q does not load: %v", name, glob, err)
			}
			if len(p.Rules()) != 1 {
				t.Fatalf("%q: glob %q makes %d rules", name, glob, len(p.Rules()))
			}
			if ok, by := p.Permits(&d); !ok || by == nil {
				t.Fatalf("%q: glob %q does not match it", name, glob)
			}
		}
		if name[0] == '/' {
			check(GeneralisePath(name, []string{"/scratch"}), policy.Dest{Family: syscall.AF_UNIX, Path: name})
		}
		check(GeneraliseAbstract(name, nil), policy.Dest{Family: syscall.AF_UNIX, Abstract: true, Path: name})
	})
}

func load(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(nil, "learned.policy", policy.Options{ReadFile: func(string) ([]byte, error) { return []byte(text), nil }})
	if err != nil {
		t.Fatalf("learned policy does not load: %v\n%s", err, text)
	}
	if w := p.Warnings(); len(w) > 0 {
		t.Errorf("learned policy warns: %q", w)
	}
	return p
}

func dest(t testing.TB, s string) *policy.Dest {
	d, err := policy.ParseDest(s)
	if err != nil {
		t.Fatal(err)
	}
	return &d
}

// FuzzWrite: whatever a run connected to, with whatever options, the
// learned file loads, allows every call of the run (by its executable)
// and has one default.
func FuzzWrite(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(80), uint8(1), "/tmp/tmp.k3j2/sock", "/usr/bin/curl", true, uint8(24), uint8(64))
	f.Add([]byte{10, 0, 0, 1}, uint16(1), uint8(0), "/x\nallow any", "/bin/a\nallow any #", false, uint8(0), uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3}, uint16(0), uint8(2), "@x 1", "/tmp/go-build1/b001/exe/a b", false, uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, ip []byte, port uint16, kind uint8, path, exe string, perExe bool, c4, c6 uint8) {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok || len(path) > 107 {
			return
		}
		types := []int{syscall.SOCK_STREAM, syscall.SOCK_DGRAM, syscall.SOCK_SEQPACKET, 0}
		fam := uint16(syscall.AF_INET6)
		if addr.Is4() {
			fam = syscall.AF_INET
		}
		conns := []Conn{
			{Dest: policy.Dest{Family: fam, SockType: types[kind%4], Addr: addr, Port: port}, Exe: exe},
			{Dest: policy.Dest{Family: fam, SockType: types[(kind+1)%4], Addr: addr, Port: port + 1}, Exe: "/bin/other"},
			{Dest: policy.Dest{Family: syscall.AF_NETLINK}, Exe: exe},
		}
		if strings.HasPrefix(path, "/") {
			conns = append(conns, Conn{Dest: policy.Dest{Family: syscall.AF_UNIX, Path: path}, Exe: exe})
		} else if path != "" {
			conns = append(conns, Conn{Dest: policy.Dest{Family: syscall.AF_UNIX, Path: path, Abstract: true}, Exe: exe})
		}
		r := NewRecorder(0)
		for _, c := range conns {
			r.Add(c)
		}
		text := string(r.Write(Options{PerExe: perExe, CollapseIPv4: int(c4 % 33), CollapseIPv6: int(c6 % 129), Command: []string{exe, path}, NoDates: true}))
		p, err := policy.Load(nil, "f", policy.Options{ReadFile: func(string) ([]byte, error) { return []byte(text), nil }})
		if err != nil {
			t.Fatalf("learned file does not load: %v\n%s", err, text)
		}
		if strings.Count(text, "\ndefault ") != 1 {
			t.Fatalf("not one default:\n%s", text)
		}
		// No name or command can add a line of its own.
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			ok := line == "" || strings.HasPrefix(line, "# ") || line == "#" || line == "default deny errno=EACCES" ||
				strings.HasPrefix(line, "allow ") && strings.Contains(line, "  # ")
			if !ok {
				t.Fatalf("line %q is not a comment, a commented rule or the default:\n%s", line, text)
			}
		}
		for _, c := range conns {
			d := c.Dest
			d.Exe = c.Exe
			if ok, by := p.Permits(&d); !ok || by == nil {
				t.Fatalf("%s by %q is not allowed by a rule of\n%s", d, c.Exe, text)
			}
		}
	})
}
