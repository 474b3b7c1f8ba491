// Package realsoftware runs real software natively and under connvisor in
// the same run and requires the same results: Go's own net package tests,
// curl against loopback servers, and Python's socket tests. Each runs
// under an allow-all policy (connvisor lets the kernel run the calls) and
// under a policy with one unrelated deny rule (every connect decided and
// performed by connvisor on a duplicate of the socket).
package realsoftware

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var connvisor string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "realsoftware")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	connvisor = filepath.Join(dir, "connvisor")
	out, err := exec.Command("go", "build", "-o", connvisor, "github.com/connvisor/connvisor/cmd/connvisor").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build connvisor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// modes are the ways a program is wrapped; "" is native. Raw sockets
// (Go's ip4:icmp tests) are refused unless the policy allows everything
// or --allow-raw lets them in: they name no port a rule could match.
var modes = []struct{ name, args string }{
	{"allow-all", "--default allow"},
	{"emulated", "--default allow --deny 192.0.2.123:9=EACCES --allow-raw"},
}

func wrap(mode string, argv ...string) []string {
	if mode == "" {
		return argv
	}
	return append(append(append([]string{connvisor, "run", "-q"}, strings.Fields(mode)...), "--"), argv...)
}

type result struct {
	out  string
	code int
}

func run(t *testing.T, dir string, timeout time.Duration, argv ...string) result {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		return result{b.String(), code}
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not finish in %v:\n%s", argv, timeout, tail(b.String()))
	}
	return result{}
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// verdicts extracts the per-test outcome lines matching re, sorted, with
// timings removed.
func verdicts(out string, re *regexp.Regexp) []string {
	var v []string
	for _, line := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			v = append(v, m[1])
		}
	}
	sort.Strings(v)
	return v
}

func compare(t *testing.T, what string, native, wrapped []string) {
	t.Helper()
	if len(native) == 0 {
		t.Fatalf("%s: the native run reported no test outcome", what)
	}
	n := map[string]bool{}
	for _, s := range native {
		n[s] = true
	}
	w := map[string]bool{}
	for _, s := range wrapped {
		w[s] = true
	}
	var diff []string
	for s := range n {
		if !w[s] {
			diff = append(diff, "native only:  "+s)
		}
	}
	for s := range w {
		if !n[s] {
			diff = append(diff, "wrapped only: "+s)
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("%s: %d outcomes differ (of %d):\n%s", what, len(diff), len(native), strings.Join(diff, "\n"))
	}
}

// TestGoNetPackage runs the tests of Go's own net package (built with
// go test -c net) natively and wrapped.
func TestGoNetPackage(t *testing.T) {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("go env GOROOT: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(goroot)), "src", "net")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("the Go source tree is not installed (%v): the net tests need their testdata", err)
	}
	bin := filepath.Join(t.TempDir(), "net.test")
	if out, err := exec.Command("go", "test", "-c", "-o", bin, "net").CombinedOutput(); err != nil {
		t.Fatalf("go test -c net: %v\n%s", err, out)
	}
	argv := []string{bin, "-test.short", "-test.v", "-test.timeout", "240s"}
	outcome := regexp.MustCompile(`^\s*(--- (?:PASS|FAIL|SKIP): \S+)`)
	native := run(t, src, 5*time.Minute, argv...)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			w := run(t, src, 5*time.Minute, wrap(m.args, argv...)...)
			if w.code != native.code {
				t.Errorf("exit %d wrapped, %d natively:\n%s", w.code, native.code, tail(w.out))
			}
			compare(t, "go net tests", verdicts(native.out, outcome), verdicts(w.out, outcome))
		})
	}
}

// TestPythonSocket runs CPython's socket tests (TCP, UDP, UNIX and the
// connection helpers) natively and wrapped.
func TestPythonSocket(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	if err := exec.Command(py, "-c", "import test.test_socket").Run(); err != nil {
		t.Skip("CPython's test suite (test.test_socket) is not installed")
	}
	argv := []string{py, "-m", "test", "test_socket", "-v",
		"-m", "NetworkConnection*", "-m", "*TCP*", "-m", "*UDP*", "-m", "*Unix*"}
	outcome := regexp.MustCompile(`^(test\S+ \(\S+\)\S* \.\.\. (?:ok|FAIL|ERROR|skipped.*))$`)
	native := run(t, t.TempDir(), 3*time.Minute, argv...)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			w := run(t, t.TempDir(), 3*time.Minute, wrap(m.args, argv...)...)
			if w.code != native.code {
				t.Errorf("exit %d wrapped, %d natively:\n%s", w.code, native.code, tail(w.out))
			}
			compare(t, "python test_socket", verdicts(native.out, outcome), verdicts(w.out, outcome))
		})
	}
}

// TestCurl fetches from loopback servers (IPv4, IPv6, a UNIX socket) and
// from a closed port, natively and wrapped, under the embedded default
// policy too, and requires the same output and exit status.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.URL.Path+"\n")
	})
	serve := func(network, addr string) net.Listener {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatalf("listen %s %s: %v", network, addr, err)
		}
		srv := &http.Server{Handler: handler}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln
	}
	v4 := serve("tcp4", "127.0.0.1:0").Addr().String()
	sock := filepath.Join(t.TempDir(), "http.sock")
	serve("unix", sock)
	closed, _ := net.Listen("tcp4", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	cases := [][]string{
		{"-sS", "http://" + v4 + "/v4"},
		{"-sS", "--unix-socket", sock, "http://x/unix"},
		{"-sS", "http://" + closedAddr + "/refused"},
	}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln.Close()
		cases = append(cases, []string{"-sS", "http://" + serve("tcp6", "[::1]:0").Addr().String() + "/v6"})
	}
	allModes := append([]struct{ name, args string }{{"default-policy", " "}}, modes...)
	for _, c := range cases {
		argv := append([]string{curl}, c...)
		native := run(t, t.TempDir(), time.Minute, argv...)
		for _, m := range allModes {
			t.Run(m.name+strings.ReplaceAll(c[len(c)-1], "/", "_"), func(t *testing.T) {
				w := run(t, t.TempDir(), time.Minute, wrap(m.args, argv...)...)
				// curl's error text carries the elapsed milliseconds.
				norm := regexp.MustCompile(`after \d+ ms`)
				if w.code != native.code || norm.ReplaceAllString(w.out, "") != norm.ReplaceAllString(native.out, "") {
					t.Errorf("curl %v:\nnative  (exit %d): %s\nwrapped (exit %d): %s", c, native.code, native.out, w.code, w.out)
				}
			})
		}
	}
}
