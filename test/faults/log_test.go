package faults

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

// failEvents returns the decision events of fail rules in a JSON log.
func failEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if ev["decision"] == "fail" {
			out = append(out, ev)
		}
	}
	return out
}

// A fault's log line says what the call returned (errno), what was
// injected and how the program gets it.
func TestFaultLogSaysWhatWasInjected(t *testing.T) {
	srv := testutil.Listen(t)
	unreachable, unreachableErrno := "so_error", "EINPROGRESS"
	if !privileged() {
		unreachable, unreachableErrno = "sync", "ENETUNREACH" // no ICMP without CAP_NET_RAW
	}
	for _, tc := range []struct {
		rule, errno, injected, delivery string
	}{
		{"ECONNREFUSED", "EINPROGRESS", "ECONNREFUSED", "so_error"},
		{"ENETUNREACH", unreachableErrno, "ENETUNREACH", unreachable},
		{"blackhole", "EINPROGRESS", "blackhole", "in_progress"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			r := wrapped(t, []string{"--fail", dest(srv.Port) + "=" + tc.rule}, goconnector, "once", dest(srv.Port), "200ms")
			evs := failEvents(t, r.logFile)
			if len(evs) != 1 {
				t.Fatalf("%d fail events, want 1:\n%s", len(evs), readFile(t, r.logFile))
			}
			ev := evs[0]
			if ev["errno"] != tc.errno || ev["injected"] != tc.injected || ev["delivery"] != tc.delivery {
				t.Errorf("errno=%v injected=%v delivery=%v, want %s %s %s", ev["errno"], ev["injected"], ev["delivery"], tc.errno, tc.injected, tc.delivery)
			}
		})
	}
}

// The seed matters only to probability=, and is logged only then.
func TestSeedOnlyWithProbability(t *testing.T) {
	srv := testutil.Listen(t)
	r := wrapped(t, []string{"--fail", dest(srv.Port) + "=ECONNREFUSED:when=1"}, goconnector, "once", dest(srv.Port), "200ms")
	if _, ok := loggedSeed(t, r.logFile); ok {
		t.Errorf("a run without probability= logged a seed:\n%s", readFile(t, r.logFile))
	}
	if log := readFile(t, r.logFile); strings.Contains(log, "differs without privileges") {
		t.Errorf("an immediate refusal is exact without privileges too, yet it warned:\n%s", log)
	}
}

// Without privileges the start-up warning names each rule whose fault
// differs, and how.
func TestUnprivilegedWarning(t *testing.T) {
	if privileged() {
		t.Skip("exact as root: the warning is for unprivileged runs (TestUnprivileged runs this as nobody)")
	}
	srv := testutil.Listen(t)
	r := wrapped(t, []string{"--fail", dest(srv.Port) + "=ENETUNREACH", "--fail", dest(srv.Port) + "=ECONNREFUSED:delay=300ms,when=5"}, goconnector, "once", dest(srv.Port), "200ms")
	log := readFile(t, r.logFile)
	for _, want := range []string{"connect itself returns ENETUNREACH", "first SYN retransmission after 300ms"} {
		if !strings.Contains(log, want) {
			t.Errorf("no warning saying %q:\n%s", want, log)
		}
	}
}
