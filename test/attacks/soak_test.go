package attacks

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// TestSoak: 64 threads in 4 worker processes connect to an allowed and a
// denied loopback server for a bounded time while the test kills workers at
// random (the target replaces them). The supervisor runs in this process
// (the Go API), so that afterwards its descriptors and goroutines can be
// counted: none may leak, and every decision must match the policy.
func TestSoak(t *testing.T) {
	needAttack(t)
	if testing.Short() {
		t.Skip("soak: not in -short")
	}
	const soakFor = 10 * time.Second
	denied, allowed := newServer(t, "tcp", ""), newServer(t, "tcp", "")
	pol, err := policy.Load([]policy.FlagRule{
		{Flag: "deny", Value: fmt.Sprintf("127.0.0.1:%d=EACCES", denied.Port)},
		{Flag: "allow", Value: "any"},
	}, "", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Settle the servers first, so their probe connections are not counted.
	denied.Hits()
	allowed.Hits()
	fdsBefore, gBefore := countFDs(t), runtime.NumGoroutine()

	var mu sync.Mutex
	var bad []string
	counts := map[string]int{}
	cmd := supervisor.Command(pol, attackBin, "soak", "127.0.0.1", port(denied.Port), port(allowed.Port),
		"64", strconv.FormatFloat(soakFor.Seconds(), 'f', 1, 64), "4")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.OnDecision = func(e supervisor.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case int(e.Dest.Port) == denied.Port:
			counts["deny"]++
			if e.Decision.Action != policy.Deny || e.Result != syscall.EACCES {
				bad = append(bad, fmt.Sprintf("%s to the denied port: %v, result %v", e.Syscall, e.Decision.Action, e.Result))
			}
		case int(e.Dest.Port) == allowed.Port:
			counts["allow"]++
			if e.Decision.Action != policy.Allow {
				bad = append(bad, fmt.Sprintf("%s to the allowed port: %v", e.Syscall, e.Decision.Action))
			}
		default:
			counts["other"]++
			bad = append(bad, fmt.Sprintf("unexpected decision %s %v: %v", e.Syscall, e.Dest, e.Decision.Action))
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := 0
	deadline := time.Now().Add(soakFor)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(50+rand.IntN(150)) * time.Millisecond)
		if w := children(cmd.Process().Pid); len(w) > 0 {
			if syscall.Kill(w[rand.IntN(len(w))], syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("soak target: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process().Kill()
		t.Fatalf("the soak target did not finish: the supervisor is stuck?\n%s", out.String())
	}
	t.Logf("decisions %v, workers killed %d, %s", counts, killed, strings.TrimSpace(out.String()))
	if n := denied.Hits(); n != 0 {
		t.Fatalf("OPEN DOOR: %d connects reached the denied server during the soak", n)
	}
	if allowed.Hits() == 0 || counts["deny"] == 0 {
		t.Fatalf("the soak made no connects: %v", counts)
	}
	mu.Lock()
	if len(bad) > 0 {
		t.Errorf("%d decisions do not match the policy, first: %s", len(bad), bad[0])
	}
	mu.Unlock()
	// Held calls end with their targets; give the last ones a moment.
	var fds, gs int
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		fds, gs = countFDs(t), runtime.NumGoroutine()
		if fds <= fdsBefore && gs <= gBefore {
			return
		}
	}
	if fds > fdsBefore {
		t.Errorf("the supervisor leaked %d descriptors (%d before, %d after): %s", fds-fdsBefore, fdsBefore, fds, fdList(t))
	}
	if gs > gBefore {
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("the supervisor leaked %d goroutines (%d before, %d after):\n%s", gs-gBefore, gBefore, gs, buf)
	}
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory's own descriptor
}

func fdList(t testing.TB) string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "%s->%s ", e.Name(), l)
		if strings.HasPrefix(l, "socket:[") {
			ino := strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")
			for _, f := range []string{"tcp", "tcp6", "udp", "udp6", "unix"} {
				data, _ := os.ReadFile("/proc/self/net/" + f)
				for _, line := range strings.Split(string(data), "\n") {
					if strings.Contains(" "+line+" ", " "+ino+" ") {
						fmt.Fprintf(&b, "[%s: %s] ", f, strings.TrimSpace(line))
					}
				}
			}
		}
	}
	return b.String()
}

// children lists the child processes of pid.
func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
