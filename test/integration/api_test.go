package integration

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// This test binary imports supervisor, so it serves as its own child stub:
// supervisor.Command re-executes it, and the stub runs in supervisor's init
// before any test code.

func mustPolicy(t testing.TB, rules ...policy.FlagRule) *policy.Policy {
	t.Helper()
	p, err := policy.Load(rules, "", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// apiRun runs prog under p through the Go API and returns what it printed,
// the decisions and Run's error.
func apiRun(t testing.TB, p *policy.Policy, prog string, args ...string) (result, []supervisor.Event, error) {
	t.Helper()
	cmd := supervisor.Command(p, prog, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var mu sync.Mutex
	var events []supervisor.Event
	cmd.OnDecision = func(e supervisor.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(testutil.RunTimeout):
		if proc := cmd.Process(); proc != nil {
			proc.Kill()
		}
		t.Fatalf("%s %q under the Go API did not finish in %v", prog, args, testutil.RunTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	return result{testutil.Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: supervisor.ExitCode(err)}}, events, err
}

// TestAPI: supervisor.Command runs a command under a policy built in Go,
// reports each decision to OnDecision, and returns the command's status.
func TestAPI(t *testing.T) {
	prog := connector(t)
	p := newPair(t, "tcp4")
	pol := mustPolicy(t,
		policy.FlagRule{Flag: "allow", Value: ruleFor(p.ok)},
		policy.FlagRule{Flag: "deny", Value: ruleFor(p.denied) + "=EACCES"})
	r, events, err := apiRun(t, pol, prog, p.args(prog, "--exit", "3")[1:]...)
	if supervisor.ExitCode(err) != 3 {
		t.Errorf("Run: %v (exit %d), want exit status 3", err, supervisor.ExitCode(err))
	}
	p.check(t, r, 1)
	if len(events) != 2 {
		t.Fatalf("%d decisions, want 2: %+v", len(events), events)
	}
	ok, denied := events[0], events[1]
	if int(ok.Dest.Port) != p.ok.port() {
		ok, denied = denied, ok
	}
	if ok.Decision.Action != policy.Allow || ok.Result != 0 || int(ok.Dest.Port) != p.ok.port() {
		t.Errorf("allowed event %+v", ok)
	}
	if denied.Decision.Action != policy.Deny || denied.Result != syscall.EACCES || int(denied.Dest.Port) != p.denied.port() {
		t.Errorf("denied event %+v", denied)
	}
	c := r.connects()[0]
	for _, e := range events {
		if e.Tid != c.tid || e.Pid != c.pid || e.Exe != prog || e.Syscall != "connect" {
			t.Errorf("event %+v: want tid %d pid %d exe %s", e, c.tid, c.pid, prog)
		}
	}
}

// TestAPIDefaultPolicy: policy.Default() denies what is not local with
// EPERM (never run natively: TEST-NET).
func TestAPIDefaultPolicy(t *testing.T) {
	prog := connector(t)
	s := newServer(t, "unix@")
	r, _, err := apiRun(t, policy.Default(), prog, append(s.spec(), "udp4", "192.0.2.7:9")...)
	if err != nil {
		t.Fatalf("Run: %v\n%v", err, r)
	}
	if got := r.results("udp4", "192.0.2.7:9"); !slices.Equal(got, []string{"EPERM"}) {
		t.Errorf("TEST-NET: %q, want [EPERM]\n%v", got, r)
	}
	if got := r.exchanges(s.kind, s.where); !slices.Equal(got, []string{"pong"}) {
		t.Errorf("abstract UNIX: %q, want [pong]\n%v", got, r)
	}
}

// TestAPIMissingCommand: Start's error for a missing command is
// exec.ErrNotFound-like and leaves nothing running.
func TestAPIMissingCommand(t *testing.T) {
	cmd := supervisor.Command(policy.Default(), "connvisor-no-such-command")
	err := cmd.Start()
	if err == nil {
		cmd.Wait()
		t.Fatal("Start of a missing command succeeded")
	}
	if !strings.Contains(err.Error(), "connvisor-no-such-command") {
		t.Errorf("error %q does not name the command", err)
	}
}

// TestAPINoLeaks: after several runs the supervisor holds no more fds and
// goroutines than before.
func TestAPINoLeaks(t *testing.T) {
	prog := connector(t)
	gprog := goConnector(t)
	tcp := newPair(t, "tcp4")
	ux := newServer(t, "unix")
	udp := newServer(t, "udp4")
	pol := mustPolicy(t,
		policy.FlagRule{Flag: "allow", Value: ruleFor(tcp.ok)},
		policy.FlagRule{Flag: "deny", Value: ruleFor(tcp.denied) + "=EACCES"})
	once := func(i int) {
		// Blocking TCP and UNIX path connects are held off the loop;
		// UDP and denied ones are answered on it; threads and a fork
		// add pidfds to the cache.
		args := append(tcp.args(prog)[1:], append(ux.spec(), udp.spec()...)...)
		switch i % 3 {
		case 1:
			args = append([]string{"--threads", "3"}, args...)
		case 2:
			args = append([]string{"--fork"}, args...)
		}
		r, events, err := apiRun(t, pol, prog, args...)
		if err != nil || len(events) == 0 {
			t.Fatalf("run %d: %v, %d decisions\n%v", i, err, len(events), r)
		}
		r, _, err = apiRun(t, pol, gprog, tcp.args(gprog)[1:]...)
		if err != nil {
			t.Fatalf("run %d (Go target): %v\n%v", i, err, r)
		}
		// A command that fails to start must clean up too.
		if err := supervisor.Command(pol, "/nonexistent/prog").Start(); err == nil {
			t.Fatal("Start of a missing command succeeded")
		}
	}
	once(0) // warm up what is created once per process (netpoller, caches)
	fds0, gs0 := openFDs(t), runtime.NumGoroutine()
	for i := 1; i <= 6; i++ {
		once(i)
	}
	var fds []string
	var gs int
	for deadline := time.Now().Add(3 * time.Second); ; {
		fds, gs = openFDs(t), runtime.NumGoroutine()
		if len(fds) <= len(fds0) && gs <= gs0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(fds) > len(fds0) {
		t.Errorf("%d fds open after the runs, %d before\nbefore: %s\nafter:  %s", len(fds), len(fds0), fds0, fds)
	}
	if gs > gs0 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the runs, %d before\n%s", gs, gs0, buf[:runtime.Stack(buf, true)])
	}
}

// openFDs lists this process's fds with what they point to.
func openFDs(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		out = append(out, fmt.Sprintf("%s=%s", e.Name(), target))
	}
	return out
}
