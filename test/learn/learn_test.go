// Package learn tests `connvisor learn` and audit mode end to end, with the
// real binary, real programs (curl, python3, git, a Go binary) and real
// loopback servers started here: a learned policy must let the same
// workload do exactly what it did natively, and deny exactly one new
// destination (or, under --audit, log it as would-deny and allow it).
package learn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	bins        *testutil.Bins
	connvisor   string
	goconnector string
)

func TestMain(m *testing.M) {
	// Other users (the git daemon drops to nobody) read the repositories
	// the tests make below the directory.
	testutil.Main(testutil.Build{Name: "learn", Programs: []string{"test/targets/goconnector"}, Shared: true},
		func(b *testutil.Bins) int {
			bins, connvisor, goconnector = b, b.Connvisor, b.Path("goconnector")
			return m.Run()
		})
}

// run runs argv natively: a whole workload, such as a git clone.
func run(t testing.TB, argv ...string) testutil.Result {
	t.Helper()
	return testutil.Cmd{Argv: argv, Timeout: testutil.LongRunTimeout}.Run(t)
}

// cv runs connvisor with args, then -- and argv.
func cv(t testing.TB, args []string, argv ...string) testutil.Result {
	t.Helper()
	return run(t, append(append(append([]string{connvisor}, args...), "--"), argv...)...)
}

// httpServer serves "hello from NAME\n" on l until the test ends.
func httpServer(t testing.TB, l net.Listener, name string) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", name)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// tcpServer starts an HTTP server on a loopback port and returns its URL.
func tcpServer(t testing.TB) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	httpServer(t, l, "port "+strconv.Itoa(port))
	return fmt.Sprintf("http://127.0.0.1:%d/", port)
}

// unixServer starts an HTTP server on a UNIX socket at path.
func unixServer(t testing.TB, path string) {
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	httpServer(t, l, filepath.Base(path))
}

// gitDaemon serves a repository with one commit over git:// on a loopback
// port and returns its URL.
func gitDaemon(t testing.TB, subject string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	base, err := os.MkdirTemp(bins.Dir, "git-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	repo := filepath.Join(base, "r.git")
	work := filepath.Join(base, "work")
	for _, argv := range [][]string{
		{"git", "init", "-q", "--bare", repo},
		{"git", "init", "-q", work},
		{"git", "-C", work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", subject},
		{"git", "-C", work, "push", "-q", repo, "HEAD:refs/heads/main"},
		{"git", "-C", repo, "symbolic-ref", "HEAD", "refs/heads/main"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", argv, err, out)
		}
	}
	// A free port: listen, close, hand it to the daemon, and wait until it
	// answers.
	port := testutil.FreePort(t)
	d := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+base,
		"--listen=127.0.0.1", "--port="+strconv.Itoa(port), base)
	var log bytes.Buffer
	d.Stderr = &log
	// `git daemon` runs git-daemon as its child: kill the process group.
	d.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.WaitDelay = time.Second
	if err := d.Start(); err != nil {
		t.Skipf("git daemon does not start: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(-d.Process.Pid, syscall.SIGKILL); d.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("git daemon does not listen: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Sprintf("git://127.0.0.1:%d/r.git", port)
}

// decision is one line of the JSON decision log.
type decision struct {
	Decision, Dest, Rule, Errno string
}

func decisions(t testing.TB, logFile string) []decision {
	t.Helper()
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []decision
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var d decision
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if d.Decision != "" {
			out = append(out, d)
		}
	}
	return out
}

// workload is a program run three ways: as learned, and with one more
// destination (plus) that the learned policy must deny.
type workload struct {
	name string
	argv []string
	// plus is argv with one destination more; newDest is that
	// destination as the decision log writes it.
	plus    []string
	newDest string
}

func workloads(t *testing.T) []workload {
	urls := []string{tcpServer(t), tcpServer(t), tcpServer(t)}
	extra := tcpServer(t)
	extraDest := "tcp " + strings.TrimSuffix(strings.TrimPrefix(extra, "http://"), "/")
	sockDir := t.TempDir()
	unixServer(t, filepath.Join(sockDir, "api.sock"))
	unixServer(t, filepath.Join(sockDir, "other.sock"))
	py := `import sys, urllib.request
for u in sys.argv[1:]:
    print(urllib.request.urlopen(u).read().decode(), end="")`
	ws := []workload{
		{name: "curl", argv: []string{"curl", "-sS", urls[0], urls[1]}, plus: []string{"curl", "-sS", urls[0], urls[1], extra}, newDest: extraDest},
		{name: "python", argv: []string{"python3", "-c", py, urls[1], urls[2]}, plus: []string{"python3", "-c", py, urls[1], urls[2], extra}, newDest: extraDest},
		{name: "unix", argv: []string{"curl", "-sS", "--unix-socket", filepath.Join(sockDir, "api.sock"), "http://x/"},
			plus:    []string{"sh", "-c", `curl -sS --unix-socket "$1" http://x/ && curl -sS --unix-socket "$2" http://x/`, "sh", filepath.Join(sockDir, "api.sock"), filepath.Join(sockDir, "other.sock")},
			newDest: "unix " + filepath.Join(sockDir, "other.sock")},
		{name: "go", argv: []string{goconnector, "get", urls[0], urls[2]}, plus: []string{goconnector, "get", urls[0], urls[2], extra}, newDest: extraDest},
	}
	if _, err := exec.LookPath("git"); err == nil {
		repo := gitDaemon(t, "learned over git://")
		other := gitDaemon(t, "another daemon")
		clone := `d=$(mktemp -d) && git clone -q "$1" "$d/r" && git -C "$d/r" log --format=%s; s=$?; rm -rf "$d"; exit $s`
		clone2 := `d=$(mktemp -d) && git clone -q "$1" "$d/r" && git -C "$d/r" log --format=%s && git clone -q "$2" "$d/o" && git -C "$d/o" log --format=%s; s=$?; rm -rf "$d"; exit $s`
		ws = append(ws, workload{name: "git", argv: []string{"sh", "-c", clone, "sh", repo},
			plus:    []string{"sh", "-c", clone2, "sh", repo, other},
			newDest: "tcp " + strings.TrimSuffix(strings.TrimPrefix(other, "git://"), "/r.git")})
	} else {
		t.Log("git is not installed: no git:// workload")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	return ws
}

// TestLearnEnforceAudit: for each workload, learn its policy (twice: the
// same bytes), run it under the learned policy with the native results,
// then with one destination more: enforced, exactly that one is denied;
// under --audit, it is logged as would-deny and the results are native.
func TestLearnEnforceAudit(t *testing.T) {
	for _, w := range workloads(t) {
		t.Run(w.name, func(t *testing.T) {
			dir := t.TempDir()
			native := run(t, w.argv...)
			if native.Code != 0 {
				t.Fatalf("native run failed:\n%s", native)
			}
			p1, p2 := filepath.Join(dir, "1.policy"), filepath.Join(dir, "2.policy")
			for _, p := range []string{p1, p2} {
				learned := cv(t, []string{"learn", "-q", "--no-dates", "-o", p}, w.argv...)
				if learned.Code != 0 || learned.Stdout != native.Stdout {
					t.Fatalf("learning run differs from native (%q):\n%s", native.Stdout, learned)
				}
			}
			a, _ := os.ReadFile(p1)
			b, _ := os.ReadFile(p2)
			if !bytes.Equal(a, b) {
				t.Fatalf("learning twice wrote different files:\n%s\n----\n%s", a, b)
			}
			t.Logf("learned policy:\n%s", a)
			if chk := run(t, connvisor, "check", p1); chk.Code != 0 || strings.Contains(chk.Stderr, "warning") {
				t.Errorf("connvisor check of the learned file:\n%s", chk)
			}

			logFile := filepath.Join(dir, "enforced.json")
			enforced := cv(t, []string{"run", "--policy", p1, "--log-format", "json", "--log-file", logFile}, w.argv...)
			if enforced.Code != native.Code || enforced.Stdout != native.Stdout {
				t.Fatalf("enforced run differs from native (%q):\n%s", native.Stdout, enforced)
			}
			for _, d := range decisions(t, logFile) {
				if d.Decision != "allow" || d.Rule == "default" {
					t.Errorf("enforced learned workload: %+v", d)
				}
			}

			nativePlus := run(t, w.plus...)
			if nativePlus.Code != 0 {
				t.Fatalf("native run with the new destination failed:\n%s", nativePlus)
			}
			logFile = filepath.Join(dir, "plus.json")
			plus := cv(t, []string{"run", "--policy", p1, "--log-format", "json", "--log-file", logFile}, w.plus...)
			if plus.Code == 0 {
				t.Errorf("the new destination %s was not refused:\n%s", w.newDest, plus)
			}
			if !strings.HasPrefix(nativePlus.Stdout, native.Stdout) || !strings.HasPrefix(plus.Stdout, native.Stdout) {
				t.Errorf("what the learned workload does changed with one destination more:\n%s", plus)
			}
			var denied []decision
			for _, d := range decisions(t, logFile) {
				if d.Decision != "allow" {
					denied = append(denied, d)
				}
			}
			if len(denied) != 1 || denied[0].Dest != w.newDest || denied[0].Decision != "deny" || denied[0].Errno != "EACCES" || denied[0].Rule != "default" {
				t.Errorf("denied %+v, want exactly %s denied by the default with EACCES", denied, w.newDest)
			}

			logFile = filepath.Join(dir, "audit.json")
			audit := cv(t, []string{"run", "--audit", "--policy", p1, "--log-format", "json", "--log-file", logFile}, w.plus...)
			if audit.Code != 0 || audit.Stdout != nativePlus.Stdout {
				t.Errorf("audit run differs from native (%q):\n%s", nativePlus.Stdout, audit)
			}
			var would []decision
			for _, d := range decisions(t, logFile) {
				if d.Decision != "allow" {
					would = append(would, d)
				}
			}
			if len(would) != 1 || would[0].Dest != w.newDest || would[0].Decision != "would-deny" || would[0].Errno != "EACCES" || would[0].Rule != "default" {
				t.Errorf("audit logged %+v, want exactly %s as would-deny (default, EACCES)", would, w.newDest)
			}
		})
	}
}
