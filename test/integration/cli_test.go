package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

// TestExitStatus: connvisor exits with the command's status, and with
// 128+signal when the command was killed, as a shell reports it.
func TestExitStatus(t *testing.T) {
	prog := connector(t)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--exit", "0"}, 0},
		{[]string{"--exit", "1"}, 1},
		{[]string{"--exit", "42"}, 42},
		{[]string{"--exit", "255"}, 255},
		{[]string{"--signal", "9"}, 128 + 9},
		{[]string{"--signal", "15"}, 128 + 15},
		{[]string{"--signal", "6"}, 128 + 6},
		{[]string{"--fork", "--exit", "7"}, 7},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			native := run(t, prog, tc.args...)
			if native.Code != tc.want {
				t.Fatalf("native exit %d, want %d: the target is broken", native.Code, tc.want)
			}
			if r := wrapped(t, []string{"-q"}, append([]string{prog}, tc.args...)...); r.Code != tc.want {
				t.Errorf("wrapped exit %d, want %d\n%v", r.Code, tc.want, r)
			}
		})
	}
	t.Run("Go --signal 15", func(t *testing.T) {
		if r := wrapped(t, []string{"-q"}, goConnector(t), "--signal", "15"); r.Code != 143 {
			t.Errorf("wrapped exit %d, want 143\n%v", r.Code, r)
		}
	})
}

// TestCurlRefused is the acceptance case: with a server listening,
// --deny PORT=ECONNREFUSED makes curl report a refused connection (exit 7).
func TestCurlRefused(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	var hits atomic.Int32
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "hello\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String() + "/"
	// --noproxy: an http_proxy in the environment would send curl elsewhere.
	curlArgs := []string{curl, "-sS", "--noproxy", "*", "--max-time", "10", url}

	r := wrapped(t, []string{"-q"}, curlArgs...)
	if r.Code != 0 || r.Stdout != "hello\n" || hits.Load() != 1 {
		t.Fatalf("allowed by the default policy: exit %d, %d requests, want 0 and 1\n%v", r.Code, hits.Load(), r)
	}
	r = wrapped(t, []string{"--deny", ln.Addr().String() + "=ECONNREFUSED"}, curlArgs...)
	if r.Code != 7 {
		t.Errorf("curl exit %d, want 7 (failed to connect)\n%v", r.Code, r)
	}
	// Not "curl: (7)": connvisor's log lines share stderr and can land
	// between curl's writes.
	if !strings.Contains(r.Stderr, "(7) Failed to connect") {
		t.Errorf("curl did not report a connection failure\n%v", r)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the server got %d requests, want none after the first run's", n-1)
	}
}

// TestJSONLog: one JSON event per decision, with who connected (tid, pid,
// exe), where (family, dest, addr, port), which rule, the decision and the
// errno the program got.
func TestJSONLog(t *testing.T) {
	prog := connector(t)
	ok := newServer(t, "tcp4")
	denied := newServer(t, "udp4")
	ux := newServer(t, "unix")
	logFile := filepath.Join(t.TempDir(), "decisions.json")
	r := wrapped(t, []string{"--log-format", "json", "--log-file", logFile,
		"--deny", ruleFor(denied) + "=ENETUNREACH", "--allow", ruleFor(ok)},
		append(append(append([]string{prog, "--threads", "2"}, ok.spec()...), denied.spec()...), ux.spec()...)...)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%v", r.Code, r)
	}
	if strings.Contains(r.Stderr, `"msg":"connect"`) {
		t.Errorf("decisions went to stderr despite --log-file:\n%s", r.Stderr)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	events := decisions(t, string(data))
	conns := r.connects()
	if len(events) != len(conns) || len(conns) != 6 {
		t.Fatalf("%d events for %d connects (want 6 of each)\nlog:\n%s\n%v", len(events), len(conns), data, r)
	}
	// Match each connect the program printed to its event by tid and dest.
	type key struct {
		tid  int
		dest string
	}
	byKey := map[key]event{}
	for _, e := range events {
		byKey[key{e.Tid, e.Dest}] = e
	}
	for _, c := range conns {
		var dest, family, decision, rule, errno string
		port := 0
		switch c.where {
		case ok.where:
			dest, family, decision, rule, port = "tcp "+ok.where, "inet", "allow", "--allow", ok.port()
		case denied.where:
			dest, family, decision, rule, errno, port = "udp "+denied.where, "inet", "deny", "--deny", "ENETUNREACH", denied.port()
		case ux.where:
			dest, family, decision, rule = "unix "+ux.where, "unix", "allow", "default"
		}
		e, found := byKey[key{c.tid, dest}]
		if !found {
			t.Errorf("no event with tid %d and dest %q for %+v\nlog:\n%s", c.tid, dest, c, data)
			continue
		}
		if e.Pid != c.pid || e.Exe != prog || e.Family != family || e.Decision != decision || e.Rule != rule || e.Port != port || e.Syscall != "connect" {
			t.Errorf("event %+v\nwant pid %d exe %s family %s decision %s rule %s port %d", e, c.pid, prog, family, decision, rule, port)
		}
		if port != 0 && e.Addr != "127.0.0.1" {
			t.Errorf("event %+v: addr %q, want 127.0.0.1", e, e.Addr)
		}
		if e.Latency == nil {
			t.Errorf("event %+v has no latency", e)
		}
		switch {
		case errno != "" && e.Errno != errno:
			t.Errorf("event %+v: errno %q, want %s", e, e.Errno, errno)
		case errno == "" && strings.HasPrefix(e.Errno, "E"):
			t.Errorf("event %+v: errno %q for a connect that succeeded", e, e.Errno)
		}
	}
}

// TestConsoleLog: the default log is for people: one line per decision on
// stderr naming the decision and the destination; -q silences it.
func TestConsoleLog(t *testing.T) {
	prog := connector(t)
	s := newServer(t, "tcp4")
	r := wrapped(t, []string{"--deny", ruleFor(s) + "=EACCES"}, append([]string{prog}, s.spec()...)...)
	var got []string
	for _, l := range lines(r.Stderr) {
		if strings.Contains(l, "connect") {
			got = append(got, l)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0], "deny") || !strings.Contains(got[0], s.where) || !strings.Contains(got[0], "EACCES") {
		t.Errorf("console log %q, want one line with deny, %s and EACCES", got, s.where)
	}
	r = wrapped(t, []string{"-q", "--deny", ruleFor(s) + "=EACCES"}, append([]string{prog}, s.spec()...)...)
	if r.Stderr != "" {
		t.Errorf("-q: stderr %q, want nothing", r.Stderr)
	}
}

// noStackTrace fails if connvisor's error output looks like a Go panic.
func noStackTrace(t *testing.T, stderr string) {
	t.Helper()
	for _, bad := range []string{"panic:", "goroutine ", ".go:", "runtime."} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr has %q, want a plain error message:\n%s", bad, stderr)
		}
	}
}

// TestMissingCommand: a clear one-line error and exit 127, like a shell.
func TestMissingCommand(t *testing.T) {
	for _, name := range []string{"connvisor-no-such-command", "/nonexistent/dir/prog"} {
		t.Run(name, func(t *testing.T) {
			r := wrapped(t, nil, name, "arg")
			if r.Code != 127 {
				t.Errorf("exit %d, want 127", r.Code)
			}
			if !strings.Contains(r.Stderr, name) {
				t.Errorf("stderr does not name the command %q:\n%s", name, r.Stderr)
			}
			if n := len(lines(r.Stderr)); n > 2 {
				t.Errorf("stderr has %d lines, want a short error:\n%s", n, r.Stderr)
			}
			noStackTrace(t, r.Stderr)
		})
	}
	// Found but not runnable: 126, as sh, env, timeout and chroot report
	// it (connvisor already follows them with 125 and 127).
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
	}{
		{"not executable", "not a program", 0o644},
		{"bad ELF", "\x7fELF garbage", 0o755},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "prog")
			if err := os.WriteFile(f, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			r := wrapped(t, nil, f)
			if r.Code != 126 {
				t.Errorf("exit %d, want 126 (found but cannot be run) as sh and env report it\n%v", r.Code, r)
			}
			if !strings.Contains(r.Stderr, f) {
				t.Errorf("stderr does not name %s:\n%s", f, r.Stderr)
			}
			noStackTrace(t, r.Stderr)
		})
	}
}

// TestBadRule: an error naming the rule, exit 2, and the command never
// starts.
func TestBadRule(t *testing.T) {
	for _, tc := range []struct{ flag, value, mention string }{
		{"--deny", "127.0.0.1:99999", "99999"},
		{"--allow", "300.1.2.3", "300.1.2.3"},
		{"--deny", "127.0.0.1:80=EWHATEVER", "EWHATEVER"},
		{"--allow", "unix:", "unix:"},
		{"--default", "maybe", "maybe"},
	} {
		t.Run(tc.flag+" "+tc.value, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "started")
			r := wrapped(t, []string{tc.flag, tc.value}, "touch", marker)
			if r.Code != 2 {
				t.Errorf("exit %d, want 2\n%v", r.Code, r)
			}
			if !strings.Contains(r.Stderr, tc.mention) {
				t.Errorf("error does not name %q:\n%s", tc.mention, r.Stderr)
			}
			noStackTrace(t, r.Stderr)
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran despite the bad rule")
			}
		})
	}
	t.Run("misspelt flag", func(t *testing.T) {
		r := wrapped(t, []string{"--dney", "any"}, "true")
		if r.Code != 2 || !strings.Contains(r.Stderr, "--deny") {
			t.Errorf("exit %d, stderr %q: want 2 and a hint naming --deny", r.Code, r.Stderr)
		}
	})
}

// TestRunWarnsAndHelps: run shows what check would warn about before the
// command starts, and --help is the usage, not an error.
func TestRunWarnsAndHelps(t *testing.T) {
	r := wrapped(t, []string{"-q", "--allow", "10.20.3.4/16:5432", "--allow", "127.0.0.1", "--deny", "127.0.0.1:80"}, "true")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%v", r.Code, r)
	}
	for _, want := range []string{"10.20.3.4/16 has host bits set", "can never match"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("run does not warn %q:\n%s", want, r.Stderr)
		}
	}
	h := run(t, bins.Connvisor, "run", "--help")
	if h.Code != 0 || !strings.Contains(h.Stdout, "--allow-ptrace") || !strings.Contains(h.Stdout, "--watch") {
		t.Errorf("run --help: exit %d, want 0 and the usage with every flag\n%v", h.Code, h)
	}
}

// TestSignalForwarding: SIGTERM, SIGINT and SIGHUP sent to connvisor reach
// the command, which handles them (the exit status is its own), and one
// that does not handle SIGTERM dies of it (143).
func TestSignalForwarding(t *testing.T) {
	prog := connector(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			code, out := signalRun(t, sig, prog, "--wait-signal")
			if want := fmt.Sprintf("signal %d", sig); !strings.Contains(out, want) {
				t.Errorf("command output %q, want %q", out, want)
			}
			if code != 100+int(sig) {
				t.Errorf("exit %d, want the command's %d", code, 100+int(sig))
			}
		})
	}
	t.Run("unhandled SIGTERM", func(t *testing.T) {
		code, _ := signalRun(t, syscall.SIGTERM, "sh", "-c", "echo ready; exec sleep 30")
		if code != 143 {
			t.Errorf("exit %d, want 143", code)
		}
	})
}

// signalRun starts connvisor run -q -- CMD, waits for CMD to print a line
// starting with "ready", sends sig to connvisor, and returns the exit
// status and the rest of the output.
func signalRun(t *testing.T, sig syscall.Signal, cmdline ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Connvisor, append([]string{"run", "-q", "--"}, cmdline...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(stdout)
	line, err := br.ReadString('\n')
	if !strings.HasPrefix(line, "ready") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("first line %q (%v), want ready; stderr:\n%s", line, err, stderr.String())
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("%v did not end the command within 20s", sig)
	}
	noStackTrace(t, stderr.String())
	return testutil.ExitCode(err), string(rest)
}
