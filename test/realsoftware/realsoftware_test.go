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
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	bins          *testutil.Bins
	connvisorFlag = flag.String("realsoftware.connvisor", "", "use this connvisor binary instead of building one")
)

func TestMain(m *testing.M) {
	flag.Parse()
	testutil.Main(testutil.Build{Name: "realsoftware", Connvisor: *connvisorFlag}, func(b *testutil.Bins) int {
		bins = b
		code := m.Run()
		printReport()
		return code
	})
}

// wrap is argv under connvisor with the flags of a mode ("": natively).
func wrap(mode string, argv ...string) []string {
	if mode == "" {
		return argv
	}
	return bins.WrapArgv(append([]string{"-q"}, strings.Fields(mode)...), argv...)
}

// run runs argv in dir: the output is stdout and stderr as a terminal
// shows them.
func run(t *testing.T, dir string, argv ...string) testutil.Result {
	t.Helper()
	return testutil.Cmd{Argv: argv, Dir: dir, Combined: true}.Run(t)
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
		native := run(t, t.TempDir(), argv...)
		for _, m := range allModes {
			t.Run(m.name+strings.ReplaceAll(c[len(c)-1], "/", "_"), func(t *testing.T) {
				w := run(t, t.TempDir(), wrap(m.args, argv...)...)
				// curl's error text carries the elapsed milliseconds.
				norm := regexp.MustCompile(`after \d+ ms`)
				if w.Code != native.Code || norm.ReplaceAllString(w.Stdout, "") != norm.ReplaceAllString(native.Stdout, "") {
					t.Errorf("curl %v:\nnative  (exit %d): %s\nwrapped (exit %d): %s", c, native.Code, native.Stdout, w.Code, w.Stdout)
				}
			})
		}
	}
}
