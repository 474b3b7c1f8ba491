// Package integration runs real programs under the real connvisor binary
// (and under the Go API) against loopback servers started by the tests, and
// checks what the programs saw: the connect results, the data exchanged,
// what the servers received, the exit status and the decision log.
//
// Destinations outside the machine appear only in denied cases, and only
// inside TEST-NET (192.0.2.0/24, RFC 5737) and 2001:db8::/32 (RFC 3849),
// which are never routed: such a case is never run natively, and a
// target sends data only to loopback and UNIX destinations.
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	repoRoot  string // the module's root
	binDir    string // built binaries, removed after the run
	connvisor string // the connvisor binary
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
	if binDir, err = os.MkdirTemp("", "connvisor-integration-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	if connvisor, err = testutil.BuildConnvisor(binDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// built builds a target once per test binary; a target that cannot be
// built here (no gcc, no static libc) skips the tests that need it.
type built struct {
	once sync.Once
	path string
	skip string
}

func (b *built) get(t testing.TB, build func() (string, string)) string {
	t.Helper()
	b.once.Do(func() { b.path, b.skip = build() })
	if b.skip != "" {
		t.Skip(b.skip)
	}
	return b.path
}

var cTarget, cStaticTarget, goTarget built

func gcc(static bool) (string, string) {
	gccPath, err := exec.LookPath("gcc")
	if err != nil {
		return "", "gcc is not installed: the C target cannot be built"
	}
	out := filepath.Join(binDir, "connector")
	args := []string{"-O2", "-Wall", "-o", out, filepath.Join(repoRoot, "test/targets/connector.c"), "-lpthread"}
	if static {
		out += "-static"
		args[3] = out
		args = append([]string{"-static"}, args...)
	}
	if msg, err := exec.Command(gccPath, args...).CombinedOutput(); err != nil {
		if static {
			return "", fmt.Sprintf("cannot link statically (is libc6-dev's libc.a there?): %v\n%s", err, msg)
		}
		// The C target is plain POSIX: failing to build it is a test bug.
		panic(fmt.Sprintf("gcc connector.c: %v\n%s", err, msg))
	}
	return out, ""
}

// connector is the C target, dynamically linked.
func connector(t testing.TB) string {
	return cTarget.get(t, func() (string, string) { return gcc(false) })
}

// staticConnector is the C target linked with -static.
func staticConnector(t testing.TB) string {
	return cStaticTarget.get(t, func() (string, string) { return gcc(true) })
}

// goConnector is the Go target.
func goConnector(t testing.TB) string {
	return goTarget.get(t, func() (string, string) {
		out := filepath.Join(binDir, "goconnector")
		if err := testutil.GoBuild(out, "test/targets/goconnector"); err != nil {
			panic(err)
		}
		return out, ""
	})
}

// result is what one run of a program printed and how it ended.
type result struct {
	stdout, stderr string
	code           int // exit status as a shell reports it: 128+signal when killed
}

// runTimeout bounds every run: no case here should take more than a few
// seconds, and a hang is a failure, not a stuck test binary.
const runTimeout = 60 * time.Second

func run(t testing.TB, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: exitCode(err)}
	if ctx.Err() != nil {
		t.Fatalf("%s %q timed out after %v\nstdout:\n%s\nstderr:\n%s", name, args, runTimeout, r.stdout, r.stderr)
	}
	if r.code == -1 {
		t.Fatalf("%s %q: %v", name, args, err)
	}
	return r
}

// wrapped runs `connvisor run FLAGS -- CMD...`.
func wrapped(t testing.TB, flags []string, cmd ...string) result {
	t.Helper()
	args := append(append([]string{"run"}, flags...), "--")
	return run(t, connvisor, append(args, cmd...)...)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

// connectLine is one "connect KIND WHERE pid=P tid=T leader=L: RESULT".
type connectLine struct {
	kind, where string
	pid, tid    int
	leader      bool
	result      string
}

var (
	connectRE  = regexp.MustCompile(`^connect (\S+) (\S+) pid=(\d+) tid=(\d+) leader=(yes|no): (\S+)$`)
	exchangeRE = regexp.MustCompile(`^exchange (\S+) (\S+): (.*)$`)
)

func (r result) connects() []connectLine {
	var out []connectLine
	for _, l := range strings.Split(r.stdout, "\n") {
		m := connectRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[3])
		tid, _ := strconv.Atoi(m[4])
		out = append(out, connectLine{m[1], m[2], pid, tid, m[5] == "yes", m[6]})
	}
	return out
}

// results returns the connect results for one destination, in order.
func (r result) results(kind, where string) []string {
	var out []string
	for _, c := range r.connects() {
		if c.kind == kind && c.where == where {
			out = append(out, c.result)
		}
	}
	return out
}

// exchanges returns what the server answered on each connection to one
// destination.
func (r result) exchanges(kind, where string) []string {
	var out []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if m := exchangeRE.FindStringSubmatch(l); m != nil && m[1] == kind && m[2] == where {
			out = append(out, m[3])
		}
	}
	return out
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// repeat returns n copies of s.
func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

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
