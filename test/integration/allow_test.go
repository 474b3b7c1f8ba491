package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// ruleFor is an --allow/--deny rule that matches exactly s's address.
func ruleFor(s *server) string {
	switch s.kind {
	case "unix":
		return "unix:" + s.where
	case "tcp6", "udp6":
		return s.where // [::1]:PORT
	}
	return s.where // 127.0.0.1:PORT
}

var families = []struct{ name, kind string }{
	{"TCP4", "tcp4"},
	{"TCP6", "tcp6"},
	{"UDP4", "udp4"},
	{"UDP6", "udp6"},
	{"UnixPath", "unix"},
	{"UnixAbstract", "unix@"},
}

// TestAllowed runs the same connect natively and wrapped under an explicit
// allow rule, and checks that the wrapped program saw what the native one
// saw, exchanged a line with the server, and that the server got it.
func TestAllowed(t *testing.T) {
	prog := connector(t)
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			s := newServer(t, f.kind)
			native := run(t, prog, s.spec()...)
			if got := native.results(s.kind, s.where); !slices.Equal(got, []string{"ok"}) {
				t.Fatalf("native run: connect results %q, want [ok]\n%v", got, native)
			}
			if n := s.reached(); n != 1 {
				t.Fatalf("native run reached the server %d times, want 1", n)
			}

			// The default would allow loopback too; EACCES as the default
			// and the rule named in the log prove that --allow decided.
			r := wrapped(t, []string{"--allow", ruleFor(s), "--default", "deny=EACCES", "--log-format", "json"}, append([]string{prog}, s.spec()...)...)
			if r.Code != 0 {
				t.Fatalf("wrapped run failed\n%v", r)
			}
			if got := r.results(s.kind, s.where); !slices.Equal(got, []string{"ok"}) {
				t.Fatalf("wrapped connect results %q, want [ok]\n%v", got, r)
			}
			if got := r.exchanges(s.kind, s.where); !slices.Equal(got, []string{"pong"}) {
				t.Errorf("wrapped exchange %q, want [pong]: the connection must reach the server\n%v", got, r)
			}
			if n := s.reached(); n != 1 {
				t.Errorf("wrapped run reached the server %d times, want 1", n)
			}
			ev := decisions(t, r.Stderr)
			if len(ev) != 1 || ev[0].Decision != "allow" || ev[0].Rule != "--allow" {
				t.Errorf("decision log %+v, want one allow by --allow", ev)
			}
			// The server must see the wrapped program itself: its pid in
			// the ping line is the one the program printed.
			c := r.connects()[0]
			want := fmt.Sprintf("ping pid=%d tid=%d", c.pid, c.tid)
			if got := s.received(); len(got) != 2 || got[1] != want {
				t.Errorf("server received %q, want the second to be %q", got, want)
			}
		})
	}
}

// TestAllowedNonblocking covers the path that Go, Python asyncio, Node and
// most servers use: EINPROGRESS from connect, then poll and SO_ERROR.
func TestAllowedNonblocking(t *testing.T) {
	prog := connector(t)
	for _, kind := range []string{"tcp4", "tcp6", "unix"} {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			r := wrapped(t, []string{"-q"}, append([]string{prog, "--nonblock"}, s.spec()...)...)
			if got := r.results(s.kind, s.where); !slices.Equal(got, []string{"ok"}) {
				t.Fatalf("connect results %q, want [ok]\n%v", got, r)
			}
			if got := r.exchanges(s.kind, s.where); !slices.Equal(got, []string{"pong"}) {
				t.Errorf("exchange %q, want [pong]\n%v", got, r)
			}
			if n := s.reached(); n != 1 {
				t.Errorf("server reached %d times, want 1", n)
			}
		})
	}
}

// TestAllowedRefusedMatchesNative: an allowed connect to a closed port must
// fail the way it fails natively, since the supervisor's connect on the
// duplicate is the program's connect.
func TestAllowedRefusedMatchesNative(t *testing.T) {
	prog := connector(t)
	s := newServer(t, "tcp4")
	closed := s.where
	s.close() // the port is now closed (and unlikely to be reused at once)
	missing := t.TempDir() + "/none.sock"
	args := []string{prog, "tcp4", closed, "unix", missing, "unix", "@connvisor-test-nobody-listens"}
	native := run(t, args[0], args[1:]...)
	r := wrapped(t, []string{"-q"}, args...)
	want := []string{"ECONNREFUSED", "ENOENT", "ECONNREFUSED"}
	for i, res := range [][]connectLine{native.connects(), r.connects()} {
		var got []string
		for _, c := range res {
			got = append(got, c.result)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s results %q, want %q\nnative:\n%v\nwrapped:\n%v", []string{"native", "wrapped"}[i], got, want, native, r)
		}
	}
}

// TestDefaultPolicy: with no policy flags loopback and UNIX sockets are
// allowed and everything else is denied with EPERM. The denied addresses are
// documentation ranges that are never routed, and this case never runs
// natively.
func TestDefaultPolicy(t *testing.T) {
	prog := connector(t)
	tcp := newServer(t, "tcp4")
	udp := newServer(t, "udp4")
	ux := newServer(t, "unix")
	abs := newServer(t, "unix@")
	var args []string
	for _, s := range []*server{tcp, udp, ux, abs} {
		args = append(args, s.spec()...)
	}
	// IPv4-mapped loopback reaches the IPv4 server through an IPv6 socket.
	mapped := fmt.Sprintf("[::ffff:127.0.0.1]:%d", tcp.port())
	args = append(args, "tcp6", mapped)
	denied := [][2]string{
		{"tcp4", "192.0.2.1:80"},
		{"udp4", "192.0.2.1:53"},
		{"tcp6", "[2001:db8::1]:80"},
		{"tcp6", "[::ffff:192.0.2.1]:80"}, // mapped: matches as 192.0.2.1
	}
	for _, d := range denied {
		args = append(args, d[0], d[1])
	}
	r := wrapped(t, []string{"--log-format", "json"}, append([]string{prog}, args...)...)
	if r.Code != 0 {
		t.Fatalf("wrapped run failed\n%v", r)
	}
	for _, s := range []*server{tcp, udp, ux, abs} {
		if got := r.results(s.kind, s.where); !slices.Equal(got, []string{"ok"}) {
			t.Errorf("%s %s: results %q, want [ok]", s.kind, s.where, got)
		}
		if got := r.exchanges(s.kind, s.where); !slices.Equal(got, []string{"pong"}) {
			t.Errorf("%s %s: exchange %q, want [pong]", s.kind, s.where, got)
		}
	}
	if got := r.results("tcp6", mapped); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("tcp6 %s (IPv4-mapped loopback): results %q, want [ok]", mapped, got)
	}
	if n := tcp.reached(); n != 2 {
		t.Errorf("TCP server reached %d times, want 2 (IPv4 and IPv4-mapped)", n)
	}
	for _, d := range denied {
		if got := r.results(d[0], d[1]); !slices.Equal(got, []string{"EPERM"}) {
			t.Errorf("%s %s: results %q, want [EPERM]", d[0], d[1], got)
		}
	}
	// Every decision names the embedded default's rules.
	for _, e := range decisions(t, r.Stderr) {
		if e.Rule != "default" {
			t.Errorf("decision %+v: rule %q, want default", e, e.Rule)
		}
	}
	if t.Failed() {
		t.Logf("wrapped run:\n%v", r)
	}
}

// lines is a helper for messages.
func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }
