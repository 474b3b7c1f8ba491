package integration

import (
	"slices"
	"testing"
)

// TestDenied: a denied connect fails with exactly the rule's errno while
// the server listens (so only the supervisor can explain the failure), and
// the server sees nothing.
func TestDenied(t *testing.T) {
	prog := connector(t)
	for _, errno := range []string{"EPERM", "EACCES", "ENETUNREACH", "ECONNREFUSED"} {
		for _, f := range []struct{ name, kind string }{{"TCP4", "tcp4"}, {"TCP6", "tcp6"}, {"UDP4", "udp4"}, {"UnixPath", "unix"}, {"UnixAbstract", "unix@"}} {
			// Every errno over TCP4; every family with EACCES (not the
			// default errno, so a rule that failed to match shows).
			if f.kind != "tcp4" && errno != "EACCES" {
				continue
			}
			t.Run(errno+"/"+f.name, func(t *testing.T) {
				s := newServer(t, f.kind)
				r := wrapped(t, []string{"-q", "--deny", ruleFor(s) + "=" + errno}, append([]string{prog}, s.spec()...)...)
				if r.Code != 0 {
					t.Fatalf("wrapped run failed\n%v", r)
				}
				if got := r.results(s.kind, s.where); !slices.Equal(got, []string{errno}) {
					t.Errorf("connect results %q, want [%s]\n%v", got, errno, r)
				}
				if got := r.exchanges(s.kind, s.where); len(got) != 0 {
					t.Errorf("a denied connect exchanged data: %q", got)
				}
				if n := s.reached(); n != 0 {
					t.Errorf("server reached %d times by a denied connect", n)
				}
			})
		}
	}
}

// TestDeniedDefaultErrno: --deny without =ERRNO denies with EPERM, and a
// --default deny=ERRNO applies to what no rule matches.
func TestDeniedDefaultErrno(t *testing.T) {
	prog := connector(t)
	a, b := newServer(t, "tcp4"), newServer(t, "tcp4")
	args := append(append([]string{prog}, a.spec()...), b.spec()...)
	r := wrapped(t, []string{"-q", "--deny", ruleFor(a), "--default", "deny=ENETUNREACH"}, args...)
	// An explicit default replaces the embedded policy (issue 12): its
	// loopback rule does not stay behind the flags, so b gets the default;
	// a is denied with the plain --deny's EPERM.
	if got := r.results(a.kind, a.where); !slices.Equal(got, []string{"EPERM"}) {
		t.Errorf("%s: results %q, want [EPERM]\n%v", a.where, got, r)
	}
	if got := r.results(b.kind, b.where); !slices.Equal(got, []string{"ENETUNREACH"}) {
		t.Errorf("%s: results %q, want [ENETUNREACH] (the explicit default; no embedded loopback rule)\n%v", b.where, got, r)
	}
	if n := b.reached(); n != 0 {
		t.Errorf("server reached %d times past the explicit default", n)
	}
	if n := a.reached(); n != 0 {
		t.Errorf("denied server reached %d times", n)
	}
	// A deny-all default from a rule: every loopback port but b's is
	// denied; the first matching rule wins.
	r = wrapped(t, []string{"-q", "--allow", ruleFor(b), "--deny", "any=ENETUNREACH"}, args...)
	if got := r.results(a.kind, a.where); !slices.Equal(got, []string{"ENETUNREACH"}) {
		t.Errorf("%s: results %q, want [ENETUNREACH] from --deny any\n%v", a.where, got, r)
	}
	if got := r.results(b.kind, b.where); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("%s: results %q, want [ok] from --allow\n%v", b.where, got, r)
	}
	if n := a.reached(); n != 0 {
		t.Errorf("denied server reached %d times", n)
	}
}
