// Package control_test drives wrapped programs (Go and Python) through the
// control API of the real connvisor binary: time-window faults, atomic
// policy swaps under 32 connecting threads, counters and their reset, the
// metrics against the decision log, and the tree kept off the socket.
package control_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/control"
	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	connvisor string
	dialer    string
)

func TestMain(m *testing.M) {
	// Under go test -race, connvisor and the dialer are built with -race
	// too (raceBuild).
	build := testutil.Build{Name: "control", Programs: []string{"test/targets/goconnector"}, Race: raceBuild}
	testutil.Main(build, func(b *testutil.Bins) int { connvisor, dialer = b.Connvisor, b.Path("goconnector"); return m.Run() })
}

// run is one `connvisor run --control SOCK [flags] -- CMD...`.
type run struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    strings.Builder
	errOut strings.Builder
	sock   string
	dir    string // the dialer's stop and pause files
	api    *control.Client
}

func start(t *testing.T, flags []string, command ...string) *run {
	t.Helper()
	r := &run{t: t, dir: t.TempDir()}
	r.sock = filepath.Join(r.dir, "control.sock")
	// The tests read the whole decision log from its start: room for
	// every decision of a slow (race-built, loaded) run.
	args := append([]string{"run", "-q", "--control", r.sock, "--decision-log", "65536"}, flags...)
	args = append(args, "--")
	for _, a := range command {
		args = append(args, strings.NewReplacer("{dir}", r.dir, "{sock}", r.sock).Replace(a))
	}
	r.cmd = exec.Command(connvisor, args...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errOut
	// Its own process group, so that a failing test ends the dialer too:
	// the dialer holds connvisor's output pipes, and Wait would wait for
	// them for ever (WaitDelay bounds that as well).
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.cmd.WaitDelay = testutil.WaitDelay
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			r.cmd.Wait()
			if t.Failed() {
				t.Logf("connvisor's stderr:\n%s", testutil.Tail(r.errOut.String(), 40))
			}
		}
	})
	r.api = control.NewClient(r.sock)
	t.Cleanup(r.api.CloseIdle)
	// connvisor listens before it starts the command.
	for i := 0; ; i++ {
		if _, _, err := r.api.Do("GET", "/v1/policy", "", nil); err == nil {
			break
		} else if i > 3000 {
			t.Fatalf("the control API never answered: %v\n%s", err, r.errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

func (r *run) call(method, path, ctype, body string, want int) []byte {
	r.t.Helper()
	code, out, err := r.api.Do(method, path, ctype, []byte(body))
	if err != nil {
		r.t.Fatalf("%s %s: %v\nconnvisor's stderr:\n%s", method, path, err, r.errOut.String())
	}
	if code != want {
		r.t.Fatalf("%s %s: HTTP %d %s, want %d", method, path, code, out, want)
	}
	return out
}

func (r *run) get(path string, v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.call("GET", path, "", "", 200), v); err != nil {
		r.t.Fatal(err)
	}
}

// decisions reads the whole decision log.
func (r *run) decisions() []control.Decision {
	r.t.Helper()
	var all []control.Decision
	since := uint64(0)
	for {
		var page control.Decisions
		r.get(fmt.Sprintf("/v1/decisions?since=%d&limit=10000", since), &page)
		if page.Dropped > 0 {
			r.t.Fatalf("the decision log dropped %d decisions", page.Dropped)
		}
		all = append(all, page.Decisions...)
		if len(page.Decisions) == 0 {
			return all
		}
		since = page.Next
	}
}

// waitFor polls the decision log until ok says so (bounded by the test's
// own timeout, not by a clock of ours).
func (r *run) waitFor(what string, ok func([]control.Decision) bool) []control.Decision {
	r.t.Helper()
	for {
		d := r.decisions()
		if ok(d) {
			return d
		}
		if r.cmd.ProcessState != nil {
			r.t.Fatalf("connvisor exited while waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *run) touch(name string) {
	if err := os.WriteFile(filepath.Join(r.dir, name), nil, 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// stop ends the dialer and returns its counts ("ok" -> 120).
func (r *run) stop() map[string]int {
	r.t.Helper()
	r.touch("stop")
	if err := r.cmd.Wait(); err != nil {
		r.t.Fatalf("connvisor run: %v\n%s", err, r.errOut.String())
	}
	counts := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(r.out.String()), "\n") {
		var k string
		var n int
		if _, err := fmt.Sscan(l, &k, &n); err == nil {
			counts[k] = n
		}
	}
	return counts
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }
