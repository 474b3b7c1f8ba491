package faults

import (
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

// straceArgv is strace injecting ECONNREFUSED into the 3rd and 4th
// connect of each tracee, with the seccomp-bpf fast path, as issue 6's
// side-by-side asks.
func straceArgv(t testing.TB, target ...string) []string {
	t.Helper()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace is not installed: nothing to compare with")
	}
	return append([]string{strace, "-f", "--seccomp-bpf", "-e", "trace=connect",
		"-e", "inject=connect:error=ECONNREFUSED:when=3..4", "-o", "/dev/null"}, target...)
}

// The same scenario under strace and connvisor: the 3rd and 4th connects
// to the database port are refused. With a program that connects only
// there, both agree; with one that also connects elsewhere in between,
// strace counts every connect (it cannot pick a destination) and refuses
// the wrong ones, while connvisor counts only the database's.
func TestStraceSideBySide(t *testing.T) {
	needC(t)
	db, other := testutil.Listen(t), testutil.Listen(t)
	connvisorFlags := []string{"-q", "--fail", dest(db.Port) + "=ECONNREFUSED:when=3..4"}
	const R, ok = "ECONNREFUSED", "ok"

	t.Run("one destination: the same pattern", func(t *testing.T) {
		args := []string{cTarget, "-p", port(db.Port), "-n", "6"}
		st, _ := parseLines(execute(t, straceArgv(t, args...)...).Stdout)
		cv, _ := faultRun(t, connvisorFlags, args[1:]...)
		want := []string{ok, ok, R, R, ok, ok}
		if got := pattern(st); !slices.Equal(got, want) {
			t.Errorf("strace: got %v, want %v", got, want)
		}
		if got := pattern(cv); !slices.Equal(got, want) {
			t.Errorf("connvisor: got %v, want %v", got, want)
		}
	})

	t.Run("another destination in between", func(t *testing.T) {
		// Connect order: db1, other1, db2, other2, db3, other3, ...
		args := []string{cTarget, "-p", port(db.Port), "-P", port(other.Port), "-n", "6"}
		stDB, stOther := parseLines(execute(t, straceArgv(t, args...)...).Stdout)
		r := wrapped(t, connvisorFlags, args...)
		cvDB, cvOther := parseLines(r.Stdout)

		// strace's 3rd and 4th connects are db2 and other2.
		if got, want := pattern(stDB), []string{ok, R, ok, ok, ok, ok}; !slices.Equal(got, want) {
			t.Errorf("strace, database: got %v, want %v", got, want)
		}
		if got, want := pattern(stOther), []string{ok, R, ok, ok, ok, ok}; !slices.Equal(got, want) {
			t.Errorf("strace, other destination: got %v, want %v (strace counts it too)", got, want)
		}
		// connvisor refuses exactly db3 and db4, never the other port.
		if got, want := pattern(cvDB), []string{ok, ok, R, R, ok, ok}; !slices.Equal(got, want) {
			t.Errorf("connvisor, database: got %v, want %v", got, want)
		}
		if got, want := pattern(cvOther), []string{ok, ok, ok, ok, ok, ok}; !slices.Equal(got, want) {
			t.Errorf("connvisor, other destination: got %v, want %v", got, want)
		}
		if slices.Equal(pattern(stDB), pattern(cvDB)) {
			t.Errorf("strace and connvisor agree on the database connects (%v) although strace counts the other destination", pattern(cvDB))
		}
	})
}

// strace counts per tracee (strace(1): "done per syscall and per tracee"),
// so "the 3rd and 4th connects" of a program that forks means two per
// process; connvisor counts across the tree, as a test author means it.
func TestStraceCountsPerProcess(t *testing.T) {
	needC(t)
	db := testutil.Listen(t)
	args := []string{cTarget, "-f", "4", "-n", "5", "-p", port(db.Port)}
	count := func(as []attempt) (refused int) {
		for _, a := range as {
			if a.result() == "ECONNREFUSED" {
				refused++
			}
		}
		return refused
	}
	st, _ := parseLines(execute(t, straceArgv(t, args...)...).Stdout)
	cv, _ := faultRun(t, []string{"-q", "--fail", dest(db.Port) + "=ECONNREFUSED:when=3..4"}, args[1:]...)
	if len(st) != 20 || len(cv) != 20 {
		t.Fatalf("want 20 attempts each, strace %d, connvisor %d", len(st), len(cv))
	}
	if got := count(st); got != 8 {
		t.Errorf("strace refused %d connects of 4 processes, want 8 (2 per process)", got)
	}
	if got := count(cv); got != 2 {
		t.Errorf("connvisor refused %d connects of the tree, want 2", got)
	}
}

var totalRE = regexp.MustCompile(`total n=(\d+) us=(\d+)`)

func perConnectMicros(t *testing.T, out string) float64 {
	t.Helper()
	m := totalRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no total in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	us, _ := strconv.Atoi(m[2])
	return float64(us) / float64(n)
}

// TestStraceCost measures (and only logs) what one connect costs under
// each tool, for 2,000 blocking connects to a loopback server timed inside
// the target: natively, under strace's seccomp-bpf injection, and under
// connvisor with the same when=3..4 rule. Each figure is the best of a few
// runs, since the two cores are shared.
func TestStraceCost(t *testing.T) {
	needC(t)
	if testing.Short() {
		t.Skip("a measurement, not a check: skipped in -short")
	}
	srv := testutil.Listen(t)
	const n = "2000"
	args := []string{cTarget, "-q", "-p", port(srv.Port), "-n", n}
	best := func(argv func() []string) float64 {
		b := 0.0
		for i := 0; i < 3; i++ {
			us := perConnectMicros(t, execute(t, argv()...).Stdout)
			if i == 0 || us < b {
				b = us
			}
		}
		return b
	}
	native := best(func() []string { return args })
	strace := best(func() []string { return straceArgv(t, args...) })
	cv := best(func() []string {
		return bins.WrapArgv([]string{"-q", "--log-file", "/dev/null",
			"--fail", dest(srv.Port) + "=ECONNREFUSED:when=3..4"}, args...)
	})
	t.Logf("per connect (socket+connect+close, %s connects, best of 3): native %.1f µs, strace %.1f µs, connvisor %.1f µs", n, native, strace, cv)
	t.Logf("added over native: strace %.1f µs, connvisor %.1f µs; connvisor/strace total %.2fx, added %.2fx",
		strace-native, cv-native, cv/strace, (cv-native)/(strace-native))
}
