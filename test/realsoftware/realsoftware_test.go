// Package realsoftware runs real software natively and under connvisor in
// the same run and requires the same results: whole upstream test suites
// (CPython's socket, asyncio, TLS and HTTP tests, Go's net and net/http;
// suites_test.go) and curl against loopback servers. Each runs under an
// allow-all policy (connvisor lets the kernel run the calls) and under a
// policy with one unrelated deny rule (every connect and send decided and
// performed by connvisor on a duplicate of the socket).
package realsoftware

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	connvisor     string
	connvisorFlag = flag.String("realsoftware.connvisor", "", "use this connvisor binary instead of building one")
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "realsoftware")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	flag.Parse()
	connvisor = *connvisorFlag
	if connvisor == "" {
		connvisor = filepath.Join(dir, "connvisor")
		out, err := exec.Command("go", "build", "-o", connvisor, "github.com/connvisor/connvisor/cmd/connvisor").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build connvisor: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	printReport()
	os.RemoveAll(dir)
	os.Exit(code)
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
	allModes := append([]struct{ name, args string }{{"default-policy", " "}}, suiteModes[1:]...)
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
