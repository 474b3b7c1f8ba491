package control_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connvisor/connvisor/control"
	"github.com/connvisor/connvisor/internal/testutil"
)

// TestTimeWindowGo: a fault added through the API with after=500ms
// for=1s fails a Go program's connects inside that window and no others.
// The window is checked against the decision log's own timestamps, with
// a margin for the time between trapping a call and deciding it.
func TestTimeWindowGo(t *testing.T) {
	srv := testutil.Listen(t)
	addr, port := srv.Addr, srv.Port
	r := start(t, []string{"--default", "deny", "--allow", "unix", "--allow", "127.0.0.1"}, dialer, "loop", addr, "2", "{dir}")
	dest := "tcp " + addr
	r.waitFor("a first connect", func(d []control.Decision) bool { return len(d) > 0 })
	rule := fmt.Sprintf(`{"rule": "fail tcp 127.0.0.1 port %d errno=ECONNREFUSED after=500ms for=1s"}`, port)
	before := time.Now()
	var added control.RuleInfo
	jsonUnmarshal(t, r.call("POST", "/v1/rules", "application/json", rule, 201), &added)
	after := time.Now()
	end := after.Add(1500 * time.Millisecond)
	r.waitFor("a connect after the window", func(ds []control.Decision) bool {
		return len(ds) > 0 && ds[len(ds)-1].Time.After(end.Add(300*time.Millisecond))
	})
	log := r.settle() // every connect the program made is in the log
	counts := r.stop()
	if want := fmt.Sprintf(`"peer_uid": %d, "peer_pid": %d, "id": %d`, os.Geteuid(), os.Getpid(), added.ID); !strings.Contains(r.errOut.String(), "rule added") || !strings.Contains(r.errOut.String(), want) {
		t.Errorf("the change is not logged with its peer (%s):\n%s", want, r.errOut.String())
	}
	const margin = 200 * time.Millisecond
	opens, closes := before.Add(500*time.Millisecond), after.Add(1500*time.Millisecond)
	var failed, allowed, allowedAfter int
	for _, d := range log {
		if d.Dest != dest {
			continue
		}
		switch {
		case d.Rule == added.Origin:
			failed++
			if d.Injected != "ECONNREFUSED" || d.Time.Before(opens.Add(-margin)) || d.Time.After(closes) {
				t.Errorf("fault outside the window [%v, %v]: %+v", opens.Format("15:04:05.000"), closes.Format("15:04:05.000"), d)
			}
		case d.Decision == "allow":
			allowed++
			if d.Time.After(after.Add(500*time.Millisecond)) && d.Time.Before(before.Add(1500*time.Millisecond-margin)) {
				t.Errorf("allowed inside the window: %+v", d)
			}
			if d.Time.After(closes) {
				allowedAfter++
			}
		default:
			t.Errorf("unexpected decision %+v", d)
		}
	}
	if failed == 0 || allowedAfter == 0 {
		t.Fatalf("%d faults, %d allowed after the window: the window was not seen opening and closing", failed, allowedAfter)
	}
	if counts["ECONNREFUSED"] != failed || counts["ok"] != allowed {
		t.Errorf("the program saw %v, the log has %d faults and %d allowed", counts, failed, allowed)
	}
	t.Logf("%d connects refused inside the window, %d allowed (%d after it)", failed, allowed, allowedAfter)
}

func jsonUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := jsonDecode(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// TestAtomicSwap32: 32 threads connect while a PUT replaces the policy
// and other clients add rules at the same time. Every connect is decided
// by the old policy or the new one, as a whole; once the PUT has
// answered, at most one decision per thread (already under way) comes
// from the old one.
func TestAtomicSwap32(t *testing.T) {
	srv := testutil.Listen(t)
	addr, port := srv.Addr, srv.Port
	dir := t.TempDir()
	file := filepath.Join(dir, "v1.policy")
	os.WriteFile(file, []byte(fmt.Sprintf("default deny\nallow unix\nallow tcp 127.0.0.1 port %d\n", port)), 0o600)
	v2 := fmt.Sprintf("default deny\nallow unix\nfail tcp 127.0.0.1 port %d errno=ECONNREFUSED\n", port)
	r := start(t, []string{"--policy", file}, dialer, "loop", addr, "32", "{dir}")
	dest := "tcp " + addr
	r.waitFor("200 decisions", func(d []control.Decision) bool { return len(d) >= 200 })
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if code, out, err := r.api.Do("POST", "/v1/rules", "application/json", []byte(`{"rule": "fail tcp 127.0.0.1 port 1 errno=EIO"}`)); err != nil || code != 201 {
					t.Errorf("POST during the swap: %d %s %v", code, out, err)
				}
			}
		}()
	}
	r.call("PUT", "/v1/policy", "text/plain", v2, 200)
	swapped := r.decisions()
	s := swapped[len(swapped)-1].Seq
	wg.Wait()
	r.waitFor("300 decisions after the swap", func(d []control.Decision) bool { return len(d) >= len(swapped)+300 })
	log := r.settle()
	var p control.PolicyInfo
	r.get("/v1/policy", &p)
	counts := r.stop()
	oldRule, newRule := file+":3", "policy:3"
	var old, new, oldAfter int
	for _, d := range log {
		if d.Dest != dest {
			continue
		}
		switch {
		case d.Rule == oldRule && d.Decision == "allow":
			old++
			if d.Seq > s {
				oldAfter++
			}
		case d.Rule == newRule && d.Decision == "fail":
			new++
		default:
			t.Errorf("decided by neither policy: %+v", d)
		}
	}
	if oldAfter > 32 {
		t.Errorf("%d decisions of the old policy logged after the swap answered (32 threads)", oldAfter)
	}
	if counts["ok"] != old || counts["ECONNREFUSED"] != new || len(counts) != 2 {
		t.Errorf("the program saw %v; the log has %d allowed by the old policy, %d refused by the new", counts, old, new)
	}
	n := len(p.Rules)
	if n < 2 || p.Rules[n-2].Rule != "allow unix" || p.Rules[n-1].Rule != fmt.Sprintf("fail tcp 127.0.0.1 port %d errno=ECONNREFUSED", port) {
		t.Errorf("policy after the swap: %+v", p.Rules)
	}
	for _, ri := range p.Rules[:n-2] {
		if !strings.HasPrefix(ri.Origin, "api#") {
			t.Errorf("rule neither of v2 nor added: %+v", ri)
		}
	}
	t.Logf("32 threads: %d connects under the old policy (%d logged after the swap answered), %d under the new; %d added rules survived the swap", old, oldAfter, new, n-2)
}

// settle pauses the dialer and waits until no decision is added.
func (r *run) settle() []control.Decision {
	r.touch("pause")
	prev := -1
	for {
		d := r.decisions()
		if len(d) == prev {
			return d
		}
		prev = len(d)
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCountersMetricsReset reads the counters and the metrics of a Go
// program's connects, checks them against the decision log, resets them,
// and checks that the fault schedule starts again.
func TestCountersMetricsReset(t *testing.T) {
	srv := testutil.Listen(t)
	addr, port := srv.Addr, srv.Port
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	r := start(t, []string{"--metrics", metricsAddr, "--fail", fmt.Sprintf("127.0.0.1:%d=ECONNREFUSED:when=1+3", port)},
		dialer, "loop", addr, "4", "{dir}")
	dest := "tcp " + addr
	r.waitFor("100 decisions", func(d []control.Decision) bool { return len(d) >= 100 })
	log := r.settle()

	// The metrics on TCP agree with the decision log, series by series.
	want := map[string]int{}
	for _, d := range log {
		want[fmt.Sprintf(`decision=%q,family=%q,rule=%q`, d.Decision, d.Family, d.Rule)]++
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for sc.Scan() {
		if k, ok := strings.CutPrefix(sc.Text(), "connvisor_decisions_total{"); ok {
			labels, v, _ := strings.Cut(k, "} ")
			got[labels], _ = strconv.Atoi(v)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics %v, decision log %v", got, want)
	}
	for _, m := range []string{"connvisor_decision_duration_seconds_count " + strconv.Itoa(len(log)), "connvisor_held_calls 0", "connvisor_internal_errors_total 0"} {
		if !strings.Contains(string(text), m+"\n") {
			t.Errorf("metrics lack %q", m)
		}
	}
	// /v1/stats agrees too.
	var st control.Stats
	r.get("/v1/stats", &st)
	var seen, failed int
	for _, d := range log {
		if d.Dest == dest {
			seen++
			if d.Decision == "fail" {
				failed++
			}
		}
	}
	if len(st.Destinations) != 1 || st.Destinations[0].Dest != dest || st.Destinations[0].Seen != seen || st.Destinations[0].Failed != failed {
		t.Errorf("stats %+v, log: %d seen, %d failed", st.Destinations, seen, failed)
	}
	if want := (seen + 2) / 3; failed != want { // when=1+3: matches 1, 4, 7, ...
		t.Errorf("%d of %d connects failed, want %d", failed, seen, want)
	}

	// Reset: counters empty, the schedule starts again from match 1.
	r.call("POST", "/v1/reset", "", "", 200)
	r.get("/v1/stats", &st)
	if len(st.Destinations) != 0 {
		t.Errorf("stats after reset: %+v", st.Destinations)
	}
	var p control.PolicyInfo
	r.get("/v1/policy", &p)
	if p.Rules[0].Action != "fail" || p.Rules[0].Matches != 0 {
		t.Errorf("fail rule after reset: %+v", p.Rules[0])
	}
	os.Remove(filepath.Join(r.dir, "pause"))
	r.waitFor("10 decisions after the reset", func(d []control.Decision) bool { return len(d) >= len(log)+10 })
	after := r.settle()[len(log):]
	failed = 0
	for _, d := range after {
		if d.Decision == "fail" {
			failed++
		}
	}
	r.get("/v1/stats", &st)
	if want := (len(after) + 2) / 3; failed != want || st.Destinations[0].Seen != len(after) {
		t.Errorf("after reset: %d of %d failed (want %d), stats %+v", failed, len(after), want, st.Destinations)
	}
	// The ctl client prints the same numbers.
	out, err := exec.Command(connvisor, "ctl", "--control", r.sock, "stats").CombinedOutput()
	if err != nil || !strings.Contains(string(out), dest) || !strings.Contains(string(out), " "+strconv.Itoa(len(after))+" ") {
		t.Errorf("connvisor ctl stats: %v\n%s", err, out)
	}
	r.stop()
}

// TestTreeCannotUseControl: a program of the tree tries the control
// socket by its path, a symlink, a hard link, and renamed, under the
// embedded default policy, under policies that allow every UNIX socket,
// and with --mode continue. It never gets an answer.
func TestTreeCannotUseControl(t *testing.T) {
	allowUnix := filepath.Join(t.TempDir(), "allow.policy")
	os.WriteFile(allowUnix, []byte("allow unix\ndefault allow\n"), 0o600)
	emulated := "path: EACCES\nsymlink: EACCES\nhardlink: EACCES\nrenamed: no answer\n"
	// --mode continue lets the kernel connect on the path the program
	// gave: the rule sees the symlink's and the hard link's names, and the
	// server refuses the peer as a descendant of connvisor.
	continued := "path: EACCES\nsymlink: no answer\nhardlink: no answer\nrenamed: no answer\n"
	for _, row := range []struct {
		flags []string
		want  string
	}{
		{nil, emulated},
		{[]string{"--default", "allow"}, emulated},
		{[]string{"--policy", allowUnix}, emulated},
		{[]string{"--mode", "continue", "--policy", allowUnix}, continued},
	} {
		flags, want := row.flags, row.want
		r := start(t, flags, dialer, "probe", "{sock}")
		if err := r.cmd.Wait(); err != nil {
			t.Fatalf("%v: %v\n%s", flags, err, r.errOut.String())
		}
		if got := r.out.String(); got != want {
			t.Errorf("policy %v: the tree saw\n%s\nwant\n%s", flags, got, want)
		}
		if !strings.Contains(r.errOut.String(), "control connection refused") {
			t.Errorf("policy %v: no log of the refused connection:\n%s", flags, r.errOut.String())
		}
	}
}

// TestPythonScenario runs the Python helper's own scenario test, which
// wraps a Python service and drives it with the helper.
func TestPythonScenario(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	cmd := exec.Command(py, "-W", "error::ResourceWarning", "-m", "unittest", "-v", "test_scenario.py")
	cmd.Dir = filepath.Join(testutil.RepoRoot(), "examples/python")
	cmd.Env = append(os.Environ(), "CONNVISOR="+connvisor)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nOK") {
		t.Fatalf("python scenario: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
