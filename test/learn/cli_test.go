package learn

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostPort is "127.0.0.1:PORT" of an http://127.0.0.1:PORT/ URL.
func hostPort(url string) string {
	return strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
}

func port(url string) string {
	_, p, _ := strings.Cut(hostPort(url), ":")
	return p
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A failing command still gets its policy, and its exit status is
// connvisor's.
func TestLearnFailingCommand(t *testing.T) {
	url := tcpServer(t)
	out := filepath.Join(t.TempDir(), "p.policy")
	r := cv(t, []string{"learn", "-q", "-o", out}, "sh", "-c", `curl -sS "$1" >/dev/null; exit 3`, "sh", url)
	if r.Code != 3 {
		t.Fatalf("exit %d, want the command's 3\n%s", r.Code, r)
	}
	if p := readFile(t, out); !strings.Contains(p, "allow tcp 127.0.0.1 port "+port(url)+" ") {
		t.Errorf("the failing command's destination is not in the policy:\n%s", p)
	}
}

// Bad input never starts the command and writes nothing: an -o that
// cannot be written, a --merge file that does not load.
func TestLearnBadInput(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	bad := filepath.Join(dir, "bad.policy")
	badText := "default deny errno=EACCES\nallow tcp 10.0.0.300 port 443\n"
	if err := os.WriteFile(bad, []byte(badText), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"-o in a missing directory", []string{"-o", filepath.Join(dir, "missing", "p.policy")}, "-o " + filepath.Join(dir, "missing", "p.policy") + ": cannot write there"},
		{"-o a directory", []string{"-o", dir}, "is a directory"},
		{"--merge does not parse", []string{"--merge", bad}, bad + ":2:11: "},
		{"--merge missing", []string{"--merge", filepath.Join(dir, "none.policy")}, "--merge: open"},
		{"bad collapse", []string{"--collapse-ipv4", "40", "-o", filepath.Join(dir, "p")}, "--collapse-ipv4 40"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := cv(t, append([]string{"learn"}, tt.args...), "touch", mark)
			if r.Code != 2 || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("exit %d, want 2 and %q\n%s", r.Code, tt.want, r)
			}
			if _, err := os.Stat(mark); err == nil {
				t.Errorf("the command ran")
			}
		})
	}
	if got := readFile(t, bad); got != badText {
		t.Errorf("the bad --merge file was written:\n%s", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// --merge adds what is missing after the existing text, which stays byte
// for byte, and says what it added; a destination a rule denies on
// purpose is reported, not added.
func TestLearnMerge(t *testing.T) {
	known, missing, denied := tcpServer(t), tcpServer(t), tcpServer(t)
	file := filepath.Join(t.TempDir(), "svc.policy")
	existing := "# the service's policy, reviewed\ndefault deny errno=EACCES\n\nallow tcp 127.0.0.1 port " + port(known) + "   # the API\n" +
		"allow unix /var/run/nscd/socket\ndeny tcp 127.0.0.1 port " + port(denied) + " errno=ECONNREFUSED  # not this one\n"
	if err := os.WriteFile(file, []byte(existing), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cv(t, []string{"learn", "-q", "--no-dates", "--merge", file}, "curl", "-sS", known, missing, denied)
	// Under audit mode the denied one is allowed: the run is not broken.
	if r.Code != 0 || strings.Count(r.Stdout, "hello from") != 3 {
		t.Fatalf("learning run:\n%s", r)
	}
	got := readFile(t, file)
	if !strings.HasPrefix(got, existing+"\n# Added by connvisor learn --merge, from a run of:\n") {
		t.Fatalf("existing text not kept, or no added block:\n%s", got)
	}
	added := got[len(existing):]
	wantRule := "allow tcp 127.0.0.1 port " + port(missing) + "  # 1 connect; by /usr/bin/curl"
	if !strings.Contains(added, wantRule) || strings.Count(added, "\nallow ") != 1 {
		t.Errorf("added block:\n%s\nwant exactly %q", added, wantRule)
	}
	if !strings.Contains(r.Stderr, "added to "+file+":\n  "+wantRule) {
		t.Errorf("learn did not print what it added:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "not added: tcp 127.0.0.1:"+port(denied)+" is denied by "+file+":6") {
		t.Errorf("learn did not report the destination a rule denies:\n%s", r.Stderr)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("merged file mode %v, want the original 0600", st.Mode().Perm())
	}
	// Enforced, the merged policy allows the two and refuses the third as
	// its rule says.
	e := cv(t, []string{"run", "-q", "--policy", file}, "curl", "-sS", known, missing, denied)
	if e.Code != 7 || strings.Count(e.Stdout, "hello from") != 2 {
		t.Errorf("enforcing the merged policy:\n%s", e)
	}
	// Merging the same run again adds nothing and changes nothing.
	r = cv(t, []string{"learn", "-q", "--no-dates", "--merge", file}, "curl", "-sS", known, missing)
	if again := readFile(t, file); again != got || !strings.Contains(r.Stderr, "nothing added") {
		t.Errorf("second merge changed the file or did not say so:\n%s\n%s", again, r.Stderr)
	}
}

// startLearn starts `connvisor learn -o out -- python3 -c script URL`: the
// script fetches URL, prints "ready", prints "got SIGTERM" on SIGTERM (and
// SIGINT likewise), and exits when its stdin closes.
func startLearn(t *testing.T, out, url string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	script := `import signal, sys, urllib.request
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda n, f: print("got", signal.Signals(n).name, flush=True))
urllib.request.urlopen(sys.argv[1]).read()
print("ready", flush=True)
sys.stdin.read()`
	cmd := exec.Command(connvisor, "learn", "-q", "--no-dates", "-o", out, "--", "python3", "-c", script, url)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewReader(stdout)
	expectLine(t, lines, "ready")
	return cmd, stdin, lines
}

func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	line, err := r.ReadString('\n')
	if strings.TrimSpace(line) != want {
		t.Fatalf("read %q (%v), want %q", line, err, want)
	}
}

// waitForFile waits until path holds want; the deadline only bounds a
// failure.
func waitForFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %q", path, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGUSR1 writes the policy while the command runs, and is not forwarded.
func TestLearnSIGUSR1(t *testing.T) {
	url := tcpServer(t)
	out := filepath.Join(t.TempDir(), "svc.policy")
	cmd, stdin, _ := startLearn(t, out, url)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the policy exists before anything asked for it")
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	snap := waitForFile(t, out, "allow tcp 127.0.0.1 port "+port(url)+" ")
	if cmd.ProcessState != nil {
		t.Fatal("SIGUSR1 ended the run")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the command did not exit cleanly after SIGUSR1 (was it forwarded?): %v", err)
	}
	if final := readFile(t, out); final != snap {
		t.Errorf("the file written at exit differs from SIGUSR1's:\n%s\n----\n%s", final, snap)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// SIGTERM and SIGINT are forwarded, then the policy is written, while the
// command (which survives them) still runs.
func TestLearnSIGTERMAndSIGINT(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			url := tcpServer(t)
			out := filepath.Join(t.TempDir(), "svc.policy")
			cmd, stdin, lines := startLearn(t, out, url)
			cmd.Process.Signal(sig)
			expectLine(t, lines, "got "+map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT"}[sig])
			waitForFile(t, out, "allow tcp 127.0.0.1 port "+port(url)+" ")
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit: %v", err)
			}
		})
	}
}

// A tree that makes 100,000 distinct connects: connvisor keeps a bounded
// record, and the file says what was left out.
func TestLearnBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 trapped connects take a while")
	}
	out := filepath.Join(t.TempDir(), "sweep.policy")
	cmd := exec.Command(connvisor, "learn", "-q", "--no-dates", "-o", out, "--", goconnector, "udp-sweep", "100000")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !strings.Contains(string(b), "udp connects: 100000 of 100000") {
		t.Fatalf("the sweep did not run to the end:\n%s", b)
	}
	p := readFile(t, out)
	m := regexp.MustCompile(`(?m)^# TRUNCATED: the run reached more than (\d+) distinct destinations`).FindStringSubmatch(p)
	if m == nil || !strings.Contains(p, "and 90000 calls to\n# destinations seen after them were not (90000 udp)") {
		t.Fatalf("no truncation note in the policy:\n%.2000s", p)
	}
	rules := strings.Count(p, "\nallow udp ")
	limit, _ := strconv.Atoi(m[1])
	if limit != 10000 || rules == 0 || rules > limit {
		t.Errorf("%d rules for a limit of %s", rules, m[1])
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
	t.Logf("100,000 distinct connects: %d rules, %d bytes of policy, connvisor's peak RSS %d MiB", rules, len(p), rss/1024)
	if rss > 256*1024 {
		t.Errorf("connvisor's peak RSS is %d MiB for 100,000 destinations: not bounded", rss/1024)
	}
}

// Audit mode from a policy file: the deny rule's connect goes through and
// is logged as would-deny with that rule and errno; side doors stay
// closed (a raw socket, a user namespace), as under the enforced policy.
func TestAuditModeFileAndSideDoors(t *testing.T) {
	url := tcpServer(t)
	dir := t.TempDir()
	pol := filepath.Join(dir, "audit.policy")
	text := "mode audit\ndefault deny errno=EACCES\nallow unix\ndeny tcp 127.0.0.1 port " + port(url) + " errno=ECONNREFUSED\n"
	if err := os.WriteFile(pol, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "log.json")
	r := cv(t, []string{"run", "-q", "--policy", pol, "--log-format", "json", "--log-file", logFile}, "curl", "-sS", url)
	if r.Code != 0 || !strings.Contains(r.Stdout, "hello from") {
		t.Fatalf("audit mode refused the connect:\n%s", r)
	}
	var would []decision
	for _, d := range decisions(t, logFile) {
		if d.Decision == "would-deny" {
			would = append(would, d)
		}
	}
	if len(would) != 1 || would[0].Rule != pol+":4" || would[0].Errno != "ECONNREFUSED" || would[0].Dest != "tcp "+hostPort(url) {
		t.Errorf("would-deny lines %+v, want one for %s by %s:4 with ECONNREFUSED", would, hostPort(url), pol)
	}

	raw := `import socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    print("raw socket: ok")
except OSError as e:
    print("raw socket:", e.strerror)`
	native := run(t, "python3", "-c", raw)
	audited := cv(t, []string{"run", "-q", "--policy", pol}, "python3", "-c", raw)
	if os.Geteuid() == 0 && native.Stdout != "raw socket: ok\n" {
		t.Fatalf("natively, root cannot make a raw socket: %s", native)
	}
	if audited.Stdout != "raw socket: Operation not permitted\n" {
		t.Errorf("audit mode let a raw socket through: %s", audited)
	}
	if _, err := exec.LookPath("unshare"); err == nil {
		u := cv(t, []string{"run", "-q", "--policy", pol}, "unshare", "-U", "true")
		if u.Code == 0 {
			t.Errorf("audit mode let a user namespace through: %s", u)
		}
	}
}
