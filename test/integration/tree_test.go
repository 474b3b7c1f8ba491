package integration

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// pair is an allowed server and a denied one that listens too: if the
// supervisor missed a connect, the denied server would be reached.
type pair struct{ ok, denied *server }

func newPair(t *testing.T, kind string) pair {
	return pair{newServer(t, kind), newServer(t, kind)}
}

func (p pair) flags(extra ...string) []string {
	return append([]string{"-q", "--allow", ruleFor(p.ok), "--deny", ruleFor(p.denied) + "=EACCES"}, extra...)
}

func (p pair) args(prog string, opts ...string) []string {
	a := append([]string{prog}, opts...)
	return append(append(a, p.ok.spec()...), p.denied.spec()...)
}

// check asserts that n connects of r reached p.ok and n were denied.
func (p pair) check(t *testing.T, r result, n int) {
	t.Helper()
	if got := r.results(p.ok.kind, p.ok.where); !slices.Equal(got, repeat("ok", n)) {
		t.Errorf("allowed destination: results %q, want %d ok", got, n)
	}
	if got := r.exchanges(p.ok.kind, p.ok.where); !slices.Equal(got, repeat("pong", n)) {
		t.Errorf("allowed destination: exchanges %q, want %d pong", got, n)
	}
	if got := r.results(p.denied.kind, p.denied.where); !slices.Equal(got, repeat("EACCES", n)) {
		t.Errorf("denied destination: results %q, want %d EACCES", got, n)
	}
	if k := p.ok.reached(); k != n {
		t.Errorf("allowed server reached %d times, want %d", k, n)
	}
	if k := p.denied.reached(); k != 0 {
		t.Errorf("denied server reached %d times, want 0", k)
	}
	if t.Failed() {
		t.Logf("wrapped run:\n%v", r)
	}
}

// TestThreads: connects from threads that are not the thread group leader
// (pidfd_open of a non-leader tid needs PIDFD_THREAD).
func TestThreads(t *testing.T) {
	const n = 4
	for _, tc := range []struct {
		name string
		prog func(testing.TB) string
	}{{"C", connector}, {"Go", goConnector}} {
		t.Run(tc.name, func(t *testing.T) {
			prog := tc.prog(t)
			for _, kind := range []string{"tcp4", "udp4", "unix"} {
				p := newPair(t, kind)
				r := wrapped(t, p.flags(), p.args(prog, "--threads", "4")...)
				if r.Code != 0 {
					t.Fatalf("exit %d\n%v", r.Code, r)
				}
				tids := map[int]bool{}
				for _, c := range r.connects() {
					if c.leader || c.tid == c.pid {
						t.Errorf("connect from the leader, want only other threads: %+v", c)
					}
					tids[c.tid] = true
				}
				if len(tids) < 2 {
					t.Errorf("connects came from %d distinct threads, want several", len(tids))
				}
				p.check(t, r, n)
			}
		})
	}
}

// TestForkGrandchild: the connects are made by a grandchild whose parent
// has exited, so it is reparented; the filter is inherited over fork and
// connvisor waits for it.
func TestForkGrandchild(t *testing.T) {
	for _, tc := range []struct {
		name string
		prog func(testing.TB) string
	}{{"C", connector}, {"Go", goConnector}} {
		t.Run(tc.name, func(t *testing.T) {
			prog := tc.prog(t)
			p := newPair(t, "tcp4")
			r := wrapped(t, p.flags(), p.args(prog, "--fork", "--exit", "5")...)
			if r.Code != 5 {
				t.Errorf("exit %d, want the leader's 5", r.Code)
			}
			if !strings.Contains(r.Stdout, "grandchild pid=") {
				t.Fatalf("no grandchild ran\n%v", r)
			}
			for _, c := range r.connects() {
				if !strings.Contains(r.Stdout, "grandchild pid="+strconv.Itoa(c.pid)+" ") {
					t.Errorf("connect by pid %d, want the grandchild's", c.pid)
				}
			}
			p.check(t, r, 1)
		})
	}
}

// TestOrphanOutlivesCommand: connvisor keeps supervising after the command
// exits, until the last process of its tree is gone: a grandchild that
// connects after its whole ancestry has exited is still under the policy.
func TestOrphanOutlivesCommand(t *testing.T) {
	prog := connector(t)
	p := newPair(t, "tcp4")
	// sh exits at once; the backgrounded connector sleeps, then connects.
	script := "(sleep 0.3; exec " + strings.Join(p.args(prog), " ") + ") & exit 3"
	r := wrapped(t, p.flags(), "sh", "-c", script)
	if r.Code != 3 {
		t.Errorf("exit %d, want the command's 3", r.Code)
	}
	p.check(t, r, 1)
}

// TestExec: a target that execs itself, and one that execs another
// program (the C target turning into the Go target): the filter survives
// execve.
func TestExec(t *testing.T) {
	c := connector(t)
	g := goConnector(t)
	for _, tc := range []struct {
		name string
		args func(p pair) []string
	}{
		{"CSelf", func(p pair) []string { return p.args(c, "--exec") }},
		{"GoSelf", func(p pair) []string { return p.args(g, "--exec") }},
		{"CIntoGo", func(p pair) []string { return p.args(c, "--exec-into", g) }},
		{"ShellIntoC", func(p pair) []string { return append([]string{"sh", "-c", `exec "$@"`, "sh"}, p.args(c)...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, "tcp4")
			r := wrapped(t, p.flags(), tc.args(p)...)
			if r.Code != 0 {
				t.Fatalf("exit %d\n%v", r.Code, r)
			}
			if tc.name != "ShellIntoC" && !strings.Contains(r.Stdout, "exec ") {
				t.Fatalf("the target did not exec\n%v", r)
			}
			p.check(t, r, 1)
		})
	}
}

// TestStaticTarget: a statically linked program (no libc wrappers to
// interpose on) is supervised all the same.
func TestStaticTarget(t *testing.T) {
	prog := staticConnector(t)
	for _, kind := range []string{"tcp4", "tcp6", "udp4", "unix", "unix@"} {
		t.Run(kind, func(t *testing.T) {
			p := newPair(t, kind)
			r := wrapped(t, p.flags(), p.args(prog)...)
			p.check(t, r, 1)
			r = wrapped(t, p.flags(), p.args(prog, "--nonblock")...)
			p.check(t, r, 1)
		})
	}
}

// TestGoTarget: Go dials with nonblocking connects from many threads, and
// its SIGURG preemption restarts trapped calls.
func TestGoTarget(t *testing.T) {
	prog := goConnector(t)
	for _, kind := range []string{"tcp4", "tcp6", "udp4", "unix", "unix@"} {
		t.Run(kind, func(t *testing.T) {
			p := newPair(t, kind)
			// Several rounds in one process: repeats from preemption would
			// show as EALREADY/EISCONN or as an extra connection.
			args := p.args(prog)
			for i := 0; i < 4; i++ {
				args = append(args, p.ok.spec()...)
				args = append(args, p.denied.spec()...)
			}
			r := wrapped(t, p.flags(), args...)
			if r.Code != 0 {
				t.Fatalf("exit %d\n%v", r.Code, r)
			}
			p.check(t, r, 5)
		})
	}
}
