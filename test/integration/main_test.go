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
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

var bins *testutil.Bins // connvisor and the Go target, built once

func TestMain(m *testing.M) {
	testutil.Main(testutil.Build{Name: "integration", Programs: []string{"test/targets/goconnector"}},
		func(b *testutil.Bins) int { bins = b; return m.Run() })
}

// built builds a C target once per test binary; one that cannot be built
// here (no gcc, no static libc) skips the tests that need it.
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

var cTarget, cStaticTarget built

func gcc(static bool) (string, string) {
	if _, err := exec.LookPath("gcc"); err != nil {
		return "", "gcc is not installed: the C target cannot be built"
	}
	name, args := "connector", []string{"-O2", "-Wall", filepath.Join(testutil.RepoRoot(), "test/targets/connector.c"), "-lpthread"}
	if static {
		name, args = "connector-static", append([]string{"-static"}, args...)
	}
	out, err := bins.CC("gcc", name, args...)
	if err != nil {
		if static {
			return "", fmt.Sprintf("cannot link statically (is libc6-dev's libc.a there?): %v", err)
		}
		// The C target is plain POSIX: failing to build it is a test bug.
		panic(err)
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
func goConnector(testing.TB) string { return bins.Path("goconnector") }

// result is one run of a target, read as connector.c's lines.
type result struct{ testutil.Result }

func run(t testing.TB, name string, args ...string) result {
	t.Helper()
	return result{testutil.Run(t, append([]string{name}, args...)...)}
}

// wrapped runs `connvisor run FLAGS -- CMD...`.
func wrapped(t testing.TB, flags []string, cmd ...string) result {
	t.Helper()
	return result{bins.Wrapped(t, flags, cmd...)}
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
	for _, l := range strings.Split(r.Stdout, "\n") {
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
	for _, l := range strings.Split(r.Stdout, "\n") {
		if m := exchangeRE.FindStringSubmatch(l); m != nil && m[1] == kind && m[2] == where {
			out = append(out, m[3])
		}
	}
	return out
}

// repeat returns n copies of s.
func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
