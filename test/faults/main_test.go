// Package faults tests connvisor's fault injection end to end: real
// programs (a C target, cprog/fault.c, and a Go one, goclient/) run under
// the real connvisor binary against loopback listeners started by the
// tests, and the tests check what the programs saw: connect's result, poll
// and SO_ERROR for nonblocking sockets, the time a held connect took, and
// the exit summary. A fault must look like the real failure, so where a
// real one can be made on loopback (a refused connect) the test runs it
// natively too and compares.
//
// Only loopback destinations are used.
package faults

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	repoRoot  string
	binDir    string
	connvisor string // the connvisor binary
	goclient  string // the Go target
	cTarget   string // the C target, "" when gcc is missing
	cSkip     string // why cTarget is missing
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs("../.."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if testutil.Unprivileged() {
		// Re-run as nobody by TestUnprivileged, with the binaries built
		// by the root run copied next to this one.
		binDir = os.Getenv(testutil.EnvDir)
		connvisor = filepath.Join(binDir, "connvisor")
		goclient = filepath.Join(binDir, "goclient")
		cSkip = "the root run had no gcc"
		if _, err := os.Stat(filepath.Join(binDir, "fault")); err == nil {
			cTarget = filepath.Join(binDir, "fault")
		}
		return m.Run()
	}
	if binDir, err = os.MkdirTemp("", "connvisor-faults-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	goclient = filepath.Join(binDir, "goclient")
	if connvisor, err = testutil.BuildConnvisor(binDir); err == nil {
		err = testutil.GoBuild(goclient, "test/faults/goclient")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		cSkip = "gcc is not installed: the C target cannot be built"
	} else {
		cTarget = filepath.Join(binDir, "fault")
		cmd := exec.Command("gcc", "-O2", "-Wall", "-o", cTarget, filepath.Join(repoRoot, "test/faults/cprog/fault.c"))
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build cprog/fault.c: %v\n%s", err, b)
			return 1
		}
	}
	return m.Run()
}

// TestUnprivileged runs the whole suite again as user nobody with no
// capabilities, as a test author who is not root runs it: every fault
// must still be what the README promises without privileges.
func TestUnprivileged(t *testing.T) {
	files := []string{connvisor, goclient}
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

// listener is a loopback TCP server that accepts and closes, counting the
// connections it saw, so a test can check that an allowed connect really
// happened and a failed one really did not.
type listener struct {
	ln       net.Listener
	port     int
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func listen(t testing.TB) *listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); l.wg.Wait() })
	return l
}

// waitAccepted waits briefly for the server to accept n connections (the
// client may close before the accept runs) and returns how many it saw.
func (l *listener) waitAccepted(n int64) int64 {
	deadline := time.Now().Add(2 * time.Second)
	for l.accepted.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // and no more than n
	return l.accepted.Load()
}

// closedPort returns a loopback port nothing listens on, for a real refusal.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
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
	stdout, stderr string
	logFile        string // connvisor's log (JSON)
	elapsed        time.Duration
}

// execute runs argv with a deadline and fails the test if it does not
// exit 0.
func execute(t testing.TB, argv ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := run{stdout: so.String(), stderr: se.String(), elapsed: time.Since(start)}
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), err, r.stdout, r.stderr)
	}
	return r
}

// wrapped runs target under `connvisor run` with flags, logging as JSON to
// a file of its own (not -q, so that info events such as the seed are in
// it); stderr keeps only what connvisor prints itself (the summary).
func wrapped(t testing.TB, flags []string, target ...string) run {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "log.json")
	argv := append([]string{connvisor, "run", "--log-format", "json", "--log-file", logFile}, flags...)
	argv = append(argv, "--")
	argv = append(argv, target...)
	r := execute(t, argv...)
	r.logFile = logFile
	return r
}

// faultRun runs the C target under connvisor and parses its lines.
func faultRun(t testing.TB, flags []string, args ...string) ([]attempt, run) {
	t.Helper()
	r := wrapped(t, flags, append([]string{cTarget}, args...)...)
	as, _ := parseLines(r.stdout)
	if len(as) == 0 {
		t.Fatalf("the target printed no attempt\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	return as, r
}

func port(p int) string { return strconv.Itoa(p) }

// dest is the compact rule for 127.0.0.1:p.
func dest(p int) string { return "127.0.0.1:" + port(p) }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
