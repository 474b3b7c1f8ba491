// Package faults tests connvisor's fault injection end to end: real
// programs (a C target, cprog/fault.c, and a Go one, the once mode of
// test/targets/goconnector) run under the real connvisor binary against
// loopback listeners started by the tests, and the tests check what the
// programs saw: connect's result, poll and SO_ERROR for nonblocking
// sockets, the time a held connect took, and the exit summary. A fault
// must look like the real failure, so where a real one can be made on
// loopback (a refused connect) the test runs it natively too and compares.
//
// Only loopback destinations are used.
package faults

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	bins        *testutil.Bins
	goconnector string // the Go target
	cTarget     string // the C target, "" when gcc is missing
	cSkip       string // why cTarget is missing
)

func TestMain(m *testing.M) {
	testutil.Main(testutil.Build{Name: "faults", Programs: []string{"test/targets/goconnector"}}, func(b *testutil.Bins) int {
		bins, goconnector = b, b.Path("goconnector")
		if testutil.Unprivileged() {
			// Re-run as nobody by TestUnprivileged, with the binaries
			// built by the root run copied next to this one.
			cSkip = "the root run had no gcc"
			if _, err := os.Stat(b.Path("fault")); err == nil {
				cTarget = b.Path("fault")
			}
			return m.Run()
		}
		if _, err := exec.LookPath("gcc"); err != nil {
			cSkip = "gcc is not installed: the C target cannot be built"
		} else if cTarget, err = b.CC("gcc", "fault", "-O2", "-Wall", filepath.Join(testutil.RepoRoot(), "test/faults/cprog/fault.c")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	})
}

// TestUnprivileged runs the whole suite again as user nobody with no
// capabilities, as a test author who is not root runs it: every fault
// must still be what the README promises without privileges.
func TestUnprivileged(t *testing.T) {
	files := []string{bins.Connvisor, goconnector}
	if cTarget != "" {
		files = append(files, cTarget)
	}
	testutil.RerunUnprivileged(t, ".", files...)
}

// privileged reports whether connvisor runs with CAP_NET_RAW and
// CAP_NET_ADMIN here (it runs as the tests' user): faults are then exact
// for every errno; without them some differ as the README says.
func privileged() bool { return os.Geteuid() == 0 }

func needC(t testing.TB) {
	t.Helper()
	if cTarget == "" {
		t.Skip(cSkip)
	}
}

// attempt is one line of the C target: key=value fields.
type attempt map[string]string

// result is "ok" for a connect that returned 0, else its errno name.
func (a attempt) result() string {
	if a["ret"] == "0" {
		return "ok"
	}
	return a["errno"]
}

func (a attempt) ms(t testing.TB, key string) int {
	t.Helper()
	v, err := strconv.Atoi(a[key])
	if err != nil {
		t.Fatalf("attempt %v: no %s", a, key)
	}
	return v
}

func (a attempt) String() string {
	keys := []string{"c", "i", "ret", "errno", "early", "revents", "so_error", "cms", "ms", "peer"}
	var b strings.Builder
	for _, k := range keys {
		if v, ok := a[k]; ok {
			fmt.Fprintf(&b, "%s=%s ", k, v)
		}
	}
	return strings.TrimSpace(b.String())
}

func parseLines(out string) (attempts, others []attempt) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		a := attempt{}
		for _, f := range strings.Fields(sc.Text()) {
			if k, v, ok := strings.Cut(f, "="); ok {
				a[k] = v
			}
		}
		switch {
		case a["i"] != "":
			attempts = append(attempts, a)
		case a["other"] != "":
			others = append(others, a)
		}
	}
	return attempts, others
}

func pattern(as []attempt) []string {
	p := make([]string, len(as))
	for i, a := range as {
		p[i] = a.result()
	}
	return p
}

// run is one run of a command, wrapped or not.
type run struct {
	testutil.Result
	logFile string // connvisor's log (JSON)
}

// execute runs argv with a deadline and fails the test if it does not
// exit 0.
func execute(t testing.TB, argv ...string) run {
	t.Helper()
	r := testutil.Run(t, argv...)
	if r.Code != 0 {
		t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), r.Code, r.Stdout, r.Stderr)
	}
	return run{Result: r}
}

// wrapped runs target under `connvisor run` with flags, logging as JSON to
// a file of its own (not -q, so that info events such as the seed are in
// it); stderr keeps only what connvisor prints itself (the summary).
func wrapped(t testing.TB, flags []string, target ...string) run {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "log.json")
	r := execute(t, bins.WrapArgv(append([]string{"--log-format", "json", "--log-file", logFile}, flags...), target...)...)
	r.logFile = logFile
	return r
}

// faultRun runs the C target under connvisor and parses its lines.
func faultRun(t testing.TB, flags []string, args ...string) ([]attempt, run) {
	t.Helper()
	r := wrapped(t, flags, append([]string{cTarget}, args...)...)
	as, _ := parseLines(r.Stdout)
	if len(as) == 0 {
		t.Fatalf("the target printed no attempt\nstdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
	return as, r
}

func port(p int) string { return strconv.Itoa(p) }

// dest is the compact rule for 127.0.0.1:p.
func dest(p int) string { return "127.0.0.1:" + port(p) }
