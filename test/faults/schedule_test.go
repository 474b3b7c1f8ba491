package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

// Each when= form selects exactly the connects strace's when= would, over
// seven blocking connects to one destination; the others fall through to
// the default (loopback allowed) and reach the real server.
func TestScheduleForms(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	const R, ok = "ECONNREFUSED", "ok"
	for _, tc := range []struct {
		when string
		want []string
	}{
		{"2", []string{ok, R, ok, ok, ok, ok, ok}},
		{"2..3", []string{ok, R, R, ok, ok, ok, ok}},
		{"1+2", []string{R, ok, R, ok, R, ok, R}},
		{"2..6+2", []string{ok, R, ok, R, ok, R, ok}},
		{"3+", []string{ok, ok, R, R, R, R, R}},
		{"1..7", []string{R, R, R, R, R, R, R}},
	} {
		t.Run("when="+tc.when, func(t *testing.T) {
			before := srv.Accepted()
			as, _ := faultRun(t, []string{"-q", "--fail", dest(srv.Port) + "=ECONNREFUSED:when=" + tc.when},
				"-p", port(srv.Port), "-n", "7")
			if got := pattern(as); !slices.Equal(got, tc.want) {
				t.Errorf("when=%s: got %v, want %v", tc.when, got, tc.want)
			}
			oks := 0
			for i, a := range as {
				switch a.result() {
				case ok:
					oks++
					if a["peer"] != dest(srv.Port) {
						t.Errorf("connect %d succeeded but getpeername says %s", i+1, a["peer"])
					}
				default:
					if a["peer"] != "ENOTCONN" {
						t.Errorf("connect %d failed but getpeername says %s", i+1, a["peer"])
					}
				}
			}
			// The failed connects never reached the server.
			if got := srv.WaitAccepted(before+int64(oks)) - before; got != int64(oks) {
				t.Errorf("server accepted %d connections, want %d (one per successful connect)", got, oks)
			}
		})
	}
}

// A connect that a fail rule's schedule does not select falls through to
// the next rule, and each rule counts only the connects that reach it.
func TestScheduleFallThrough(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	d := dest(srv.Port)
	t.Run("to a later deny", func(t *testing.T) {
		as, _ := faultRun(t, []string{"-q", "--fail", d + "=ECONNREFUSED:when=2..3", "--deny", d + "=EACCES"},
			"-p", port(srv.Port), "-n", "5")
		want := []string{"EACCES", "ECONNREFUSED", "ECONNREFUSED", "EACCES", "EACCES"}
		if got := pattern(as); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("to a second fail rule counting its own matches", func(t *testing.T) {
		// Rule 1 takes connects 1, 3, 5, 7; connects 2, 4, 6 reach rule 2
		// as its 1st, 2nd and 3rd match, so its when=2 is connect 4.
		as, _ := faultRun(t, []string{"-q", "--fail", d + "=ECONNREFUSED:when=1+2", "--fail", d + "=ENETUNREACH:when=2"},
			"-p", port(srv.Port), "-n", "7")
		want := []string{"ECONNREFUSED", "ok", "ECONNREFUSED", "ENETUNREACH", "ECONNREFUSED", "ok", "ECONNREFUSED"}
		if got := pattern(as); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("policy file form", func(t *testing.T) {
		file := t.TempDir() + "/chaos.policy"
		policy := "default deny errno=EACCES\n" +
			"fail tcp 127.0.0.1 port " + port(srv.Port) + " errno=ECONNREFUSED when=3..4\n" +
			"allow tcp 127.0.0.1 port " + port(srv.Port) + "\n"
		if err := os.WriteFile(file, []byte(policy), 0o644); err != nil {
			t.Fatal(err)
		}
		as, _ := faultRun(t, []string{"-q", "--policy", file}, "-p", port(srv.Port), "-n", "6")
		want := []string{"ok", "ok", "ECONNREFUSED", "ECONNREFUSED", "ok", "ok"}
		if got := pattern(as); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

// probability= is deterministic from the seed: the same seed replays the
// same pattern, and a run without --seed logs the seed it chose, which
// replays that run.
func TestProbabilityReplay(t *testing.T) {
	needC(t)
	srv := testutil.Listen(t)
	rule := dest(srv.Port) + "=ECONNREFUSED:probability=0.5"
	args := []string{"-p", port(srv.Port), "-n", "24"}
	once := func(flags ...string) ([]string, run) {
		as, r := faultRun(t, append([]string{"--fail", rule}, flags...), args...)
		return pattern(as), r
	}
	a, _ := once("--seed", "42")
	b, _ := once("--seed", "42")
	if !slices.Equal(a, b) {
		t.Fatalf("--seed 42 twice gave different patterns:\n%v\n%v", a, b)
	}
	refused := strings.Count(strings.Join(a, " "), "ECONNREFUSED")
	if refused == 0 || refused == len(a) {
		t.Errorf("probability=0.5 over %d connects refused %d: %v", len(a), refused, a)
	}
	c, _ := once("--seed", "43")
	if slices.Equal(a, c) {
		t.Errorf("--seed 42 and --seed 43 gave the same pattern %v (2^-24 by chance)", a)
	}

	d, r := once()
	seed, ok := loggedSeed(t, r.logFile)
	if !ok {
		t.Fatalf("a run with probability= and no --seed logged no seed; log:\n%s", readFile(t, r.logFile))
	}
	e, _ := once("--seed", strconv.FormatInt(seed, 10))
	if !slices.Equal(d, e) {
		t.Errorf("replaying with the logged seed %d: got %v, the original run was %v", seed, e, d)
	}
	t.Logf("seed 42: %v; logged seed %d: %v", a, seed, d)
}

// loggedSeed finds the seed connvisor logged in its JSON log.
func loggedSeed(t testing.TB, path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev map[string]any
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber() // a seed is an int64, beyond float64's exact range
		if dec.Decode(&ev) != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
			continue
		}
		if s, ok := ev["seed"].(json.Number); ok {
			n, err := s.Int64()
			if err != nil {
				t.Errorf("logged seed %q: %v", s, err)
			}
			return n, err == nil
		}
	}
	return 0, false
}

func readFile(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFaultLeavesStateRefusalsToTheKernel: a connect the socket's state
// refuses whatever the destination (EALREADY while one is in progress) is
// the kernel's to answer, at once, and is not counted by the schedule: a
// program polling with connect must not meet the fault's delay or errno.
func TestFaultLeavesStateRefusalsToTheKernel(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	const prog = `
import errno, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setblocking(False)
out = []
for pause in (0, 0, 0.05):
    time.sleep(pause)
    t0 = time.monotonic()
    e = s.connect_ex(("192.0.2.77", 9))
    out.append("%s:%s" % (errno.errorcode.get(e, e), "slow" if time.monotonic() - t0 > 0.5 else "fast"))
print(" ".join(out))
`
	r := wrapped(t, []string{"-q", "--fail", "192.0.2.77:9=ECONNREFUSED:delay=1s"}, py, "-c", prog)
	got := strings.TrimSpace(r.Stdout)
	if want := "EINPROGRESS:fast EALREADY:fast EALREADY:fast"; got != want {
		t.Errorf("connects: %q, want %q (natively a connect in progress answers EALREADY at once)\nstderr:\n%s", got, want, r.Stderr)
	}
}
