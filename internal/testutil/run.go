package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Result is how one run of a program ended and what it printed.
type Result struct {
	Stdout, Stderr string // with Cmd.Combined, Stdout holds both, interleaved
	// Code is the exit status as a shell reports it: 128+N when the
	// program was killed by signal N.
	Code    int
	Elapsed time.Duration
	// MaxRSS is the largest resident set (KiB) of the program and of
	// every descendant it waited for.
	MaxRSS int64
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Cmd is one run of a program, described before it starts.
type Cmd struct {
	Argv     []string
	Dir      string   // the working directory; the test's when empty
	Env      []string // added to the test's environment
	Stdin    io.Reader
	Timeout  time.Duration // RunTimeout when zero
	Combined bool          // stderr into Stdout, as a terminal interleaves them
}

// Run runs c to its end. It fails t when the program cannot start or
// outlives its timeout: a hang is a failure, not a stuck test binary.
func (c Cmd) Run(t testing.TB) Result {
	t.Helper()
	timeout := c.Timeout
	if timeout == 0 {
		timeout = RunTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir, cmd.Stdin = c.Dir, c.Stdin
	if c.Env != nil {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if c.Combined {
		cmd.Stderr = &stdout
	}
	cmd.WaitDelay = WaitDelay
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: ExitCode(err), Elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("%q timed out after %v\n%s", c.Argv, timeout, r)
	}
	if r.Code == -1 {
		t.Fatalf("%q: %v", c.Argv, err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSS = ru.Maxrss
	}
	return r
}

// Run runs argv natively with the defaults of Cmd.
func Run(t testing.TB, argv ...string) Result {
	t.Helper()
	return Cmd{Argv: argv}.Run(t)
}

// WrapArgv is argv under `connvisor run FLAGS --`.
func (b *Bins) WrapArgv(flags []string, argv ...string) []string {
	out := append(append(append([]string{b.Connvisor, "run"}, flags...), "--"), argv...)
	return out[:len(out):len(out)] // a caller's append copies: wrap once, append per case

}

// Wrapped runs argv under `connvisor run FLAGS --`.
func (b *Bins) Wrapped(t testing.TB, flags []string, argv ...string) Result {
	t.Helper()
	return Run(t, b.WrapArgv(flags, argv...)...)
}

// ExitCode is the status of a finished command's error as a shell reports
// it: 0, the exit status, 128+N for a death by signal N; -1 when the
// command did not run to its end (it could not start, or be waited for).
func ExitCode(err error) int {
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		// ErrWaitDelay: it exited 0, and a descendant held its output
		// open past WaitDelay (a target outliving a killed supervisor).
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

// Tail is the last n lines of s, for failure messages about long output.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
