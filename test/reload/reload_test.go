// Package reload tests that a running `connvisor run` takes a new policy
// file on SIGUSR2 or, with --watch, when the file changes, that an invalid
// new policy changes nothing, and that a reload can never take the command
// down: SIGUSR2 is not forwarded, and SIGHUP is forwarded untouched, as if
// connvisor were not there.
package reload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

// The wrapped program is this test binary: for each line on stdin it
// connects to the address in CONNVISOR_RELOAD_TARGET and prints "ok" or
// the errno.
func TestMain(m *testing.M) {
	if addr := os.Getenv("CONNVISOR_RELOAD_TARGET"); addr != "" {
		// SIGHUP keeps its default action: a forwarded SIGHUP kills us,
		// as it would natively. SIGUSR2 too: if connvisor forwarded its
		// reload signal, we would die of it.
		signal.Reset(syscall.SIGHUP, syscall.SIGUSR2)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				var errno syscall.Errno
				if ok := asErrno(err, &errno); ok {
					fmt.Println(errno.Error())
				} else {
					fmt.Println(err)
				}
				continue
			}
			c.Close()
			fmt.Println("ok")
		}
		os.Exit(0)
	}
	testutil.Main(testutil.Build{Name: "reload"}, func(b *testutil.Bins) int { connvisor = b.Connvisor; return m.Run() })
}

var connvisor string

func asErrno(err error, target *syscall.Errno) bool {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

type session struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	logf   string
	policy string
}

func start(t *testing.T, extra ...string) (*session, string) {
	t.Helper()
	addr := testutil.Listen(t).Addr
	dir := t.TempDir()
	s := &session{t: t, logf: filepath.Join(dir, "log.json"), policy: filepath.Join(dir, "p.policy")}
	s.write("default allow\ndeny " + addr + "=ECONNREFUSED\n")
	self, _ := os.Executable()
	args := append([]string{"run", "--policy", s.policy, "--log-format", "json", "--log-file", s.logf}, extra...)
	args = append(args, "--", self)
	s.cmd = exec.Command(connvisor, args...)
	s.cmd.Env = append(os.Environ(), "CONNVISOR_RELOAD_TARGET="+addr)
	s.in, _ = s.cmd.StdinPipe()
	stdout, _ := s.cmd.StdoutPipe()
	s.cmd.Stderr = os.Stderr
	s.out = bufio.NewScanner(stdout)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.in.Close()
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
		}
	})
	return s, addr
}

func (s *session) write(policy string) {
	s.t.Helper()
	// Write a new file and rename it over the old one, as editors do.
	tmp := s.policy + ".tmp"
	if err := os.WriteFile(tmp, []byte(policy), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.policy); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) connect() string {
	s.t.Helper()
	fmt.Fprintln(s.in, "c")
	if !s.out.Scan() {
		s.t.Fatalf("target ended: %v", s.out.Err())
	}
	return s.out.Text()
}

// waitLog waits until the decision log holds n lines containing msg.
func (s *session) waitLog(msg string, n int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(s.logf)
		if strings.Count(string(b), msg) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(s.logf)
	s.t.Fatalf("log never had %d x %q:\n%s", n, msg, b)
}

func TestReloadOnSIGUSR2(t *testing.T) {
	s, _ := start(t)
	if got := s.connect(); got != syscall.ECONNREFUSED.Error() {
		t.Fatalf("before reload: %q, want connection refused", got)
	}
	s.write("default allow\n")
	s.cmd.Process.Signal(syscall.SIGUSR2)
	s.waitLog("policy reloaded", 1)
	if got := s.connect(); got != "ok" {
		t.Fatalf("after reload: %q, want ok (and the command alive: SIGUSR2 is not forwarded)", got)
	}
	// An invalid policy is rejected and the one in force stays.
	s.write("default allow\ndeny 10.0.0.1 errno=ECONREFUSED\n")
	s.cmd.Process.Signal(syscall.SIGUSR2)
	s.waitLog("policy reload rejected", 1)
	b, _ := os.ReadFile(s.logf)
	if !strings.Contains(string(b), "p.policy:2:") || !strings.Contains(string(b), "ECONNREFUSED") {
		t.Errorf("rejection does not name the line and the fix:\n%s", b)
	}
	if got := s.connect(); got != "ok" {
		t.Fatalf("after a rejected reload: %q, want ok (old policy)", got)
	}
}

// SIGHUP belongs to the command: it is forwarded and reloads nothing. The
// command has no handler, so it dies of it, exactly as natively.
func TestSIGHUPIsForwardedNotReloaded(t *testing.T) {
	s, _ := start(t)
	if got := s.connect(); got != syscall.ECONNREFUSED.Error() {
		t.Fatalf("before SIGHUP: %q, want connection refused", got)
	}
	s.write("default allow\n")
	s.cmd.Process.Signal(syscall.SIGHUP)
	err := s.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGHUP) {
		t.Fatalf("connvisor after SIGHUP: %v, want exit status 129 (the command killed by the forwarded SIGHUP)", err)
	}
	if b, _ := os.ReadFile(s.logf); strings.Contains(string(b), "policy reloaded") {
		t.Errorf("SIGHUP reloaded the policy:\n%s", b)
	}
}

func TestReloadOnWatch(t *testing.T) {
	s, addr := start(t, "--watch")
	if got := s.connect(); got != syscall.ECONNREFUSED.Error() {
		t.Fatalf("before change: %q, want connection refused", got)
	}
	// Make sure the modification time moves even on coarse clocks.
	time.Sleep(20 * time.Millisecond)
	s.write("default allow\ndeny " + addr + "=ENETUNREACH\n")
	s.waitLog("policy reloaded", 1)
	if got := s.connect(); got != syscall.ENETUNREACH.Error() {
		t.Fatalf("after change: %q, want network is unreachable", got)
	}
}
