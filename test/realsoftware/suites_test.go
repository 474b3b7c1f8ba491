package realsoftware

import (
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

// The suites run whole with `make realsoftware` (-realsoftware.whole);
// CI runs each on a fixed sample that keeps the package within its budget.
var (
	wholeFlag  = flag.Bool("realsoftware.whole", false, "run every suite whole (make realsoftware) instead of CI's fixed sample")
	suitesFlag = flag.String("realsoftware.suites", "", "comma-separated suite names to run, as the table names them or as subtests do (go_net_http); default: all")
	keepFlag   = flag.String("realsoftware.keep", "", "directory that keeps every run's output and connvisor's JSON decision log")
	modesFlag  = flag.String("realsoftware.modes", "", "comma-separated wrapped modes to run after the native one (allow-all, emulated; native: none; default: both)")
)

// suiteModes are the ways a suite runs: natively, under an allow-all
// policy (the kernel runs every trapped call), and under a policy with one
// unrelated deny rule, so that every connect and send is decided and
// performed by connvisor. Raw sockets (Go's ip4:icmp tests) are let in by
// --allow-raw: they name no port a rule could match.
var suiteModes = []struct{ name, args string }{
	{"native", ""},
	{"allow-all", "--default allow"},
	{"emulated", "--default allow --deny 192.0.2.99:1=EACCES --allow-raw"},
}

// status is one test case's outcome.
type status int

const (
	passed status = iota
	failed
	skipped
)

func (s status) String() string { return [...]string{"pass", "FAIL", "skip"}[s] }

type caseResult struct {
	status status
	detail string // skip reason, or the failure's last lines
}

// suiteRun is one run of a suite in one mode.
type suiteRun struct {
	mode    string
	cases   map[string]caseResult
	exit    int
	elapsed time.Duration
	output  string
	broken  string // why the run produced no usable outcome, if so
}

func (r *suiteRun) count(s status) int {
	n := 0
	for _, c := range r.cases {
		if c.status == s {
			n++
		}
	}
	return n
}

// suite describes how to run one upstream test suite and read its
// outcomes.
type suite struct {
	name string
	// argv returns the command for the whole suite, or for CI's sample;
	// only, when set, restricts it to those test cases (a rerun).
	argv func(t *testing.T, outDir string, whole bool, only []string) (argv []string, dir string)
	// parse reads the per-case outcomes of a finished run.
	parse func(outDir, output string) (map[string]caseResult, error)
	// sample says what CI leaves out and why.
	sample  string
	timeout time.Duration // for the whole run; CI's sample gets sampleTimeout
	// excluded are cases left out of every run, with the reason.
	excluded map[string]string
}

const sampleTimeout = 3 * time.Minute

// pythonSuite is one file of CPython's test package, run by regrtest
// (python3 -m test), which sets up what the tests expect (resources,
// temporary directories, the thread and fd leak checks). CI runs the file
// whole but for ciSkip: test cases (regrtest -i patterns) that mostly wait
// out a timeout or a sleep, a second or more each.
func pythonSuite(name string, timeout time.Duration, ciOnly, ciSkip []string, excluded map[string]string) suite {
	var sample []string
	if len(ciOnly) > 0 {
		sample = append(sample, "CI runs only "+strings.Join(ciOnly, ", "))
	}
	if len(ciSkip) > 0 {
		sample = append(sample, "CI leaves out the cases that mostly wait out a timeout or a sleep (1 s or more each natively): "+strings.Join(ciSkip, ", "))
	}
	return suite{
		name: name, sample: strings.Join(sample, "; "), timeout: timeout, excluded: excluded,
		argv: func(t *testing.T, outDir string, whole bool, only []string) ([]string, string) {
			py := pythonOrSkip(t)
			sampled := !whole && len(only) == 0 // a rerun names its cases
			if sampled {
				only = ciOnly
			}
			argv := []string{py, "-m", "test", "-v", "-u", pythonResources, "--junit-xml", filepath.Join(outDir, "junit.xml"), name}
			// regrtest checks its patterns last to first: the -m
			// selection goes first, the -i exclusions after it.
			for _, id := range only {
				// A class-level failure is rerun as its whole class.
				if strings.HasSuffix(id, ".setUpModule") {
					id = strings.TrimSuffix(id, ".setUpModule") + ".*"
				}
				for _, fixture := range []string{".setUpClass", ".tearDownClass"} {
					if strings.HasSuffix(id, fixture) {
						id = strings.TrimSuffix(id, fixture) + ".*"
					}
				}
				argv = append(argv, "-m", id)
			}
			for pat := range excluded {
				argv = append(argv, "-i", pat)
			}
			if sampled {
				for _, pat := range ciSkip {
					argv = append(argv, "-i", pat)
				}
			}
			return argv, outDir
		},
		parse: parsePython,
	}
}

// pythonResources are regrtest's resources the suites may use: all but the
// Internet (urlfetch; network only means the local host's network here,
// and the tests that try the Internet skip without it) and the huge,
// graphical or audio ones, which touch no socket.
const pythonResources = "all,-urlfetch,-largefile,-extralargefile,-gui,-audio,-curses,-tzdata"

func pythonOrSkip(t *testing.T) string {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	if err := exec.Command(py, "-c", "import test.libregrtest, test.test_socket").Run(); err != nil {
		t.Skip("CPython's test package (test.libregrtest) is not installed")
	}
	return py
}

// goSuite is a standard-library package's own tests, built with go test -c
// and run in the package's source directory (its testdata).
func goSuite(pkg string, timeout time.Duration) suite {
	var once sync.Once
	var bin string
	var buildErr error
	return suite{
		name: "go " + pkg, timeout: timeout,
		sample: "CI runs the package's tests with -test.short, which leaves out its long tests and those that need the Internet",
		argv: func(t *testing.T, outDir string, whole bool, only []string) ([]string, string) {
			goroot, err := exec.Command("go", "env", "GOROOT").Output()
			if err != nil {
				t.Skipf("go env GOROOT: %v", err)
			}
			src := filepath.Join(strings.TrimSpace(string(goroot)), "src", filepath.FromSlash(pkg))
			if _, err := os.Stat(src); err != nil {
				t.Skipf("the Go source tree is not installed (%v): the %s tests need their testdata", err, pkg)
			}
			once.Do(func() {
				bin = bins.Path(strings.ReplaceAll(pkg, "/", "_") + ".test")
				if out, err := exec.Command("go", "test", "-c", "-o", bin, pkg).CombinedOutput(); err != nil {
					buildErr = fmt.Errorf("go test -c %s: %v\n%s", pkg, err, out)
				}
			})
			if buildErr != nil {
				t.Fatal(buildErr)
			}
			// test2json framing puts every outcome line at the start of a
			// line of its own, even after output without a newline.
			argv := []string{bin, "-test.v=test2json", "-test.timeout", (timeout - 30*time.Second).String()}
			switch {
			case len(only) > 0:
				argv = append(argv, "-test.run", goRunPattern(only))
			case !whole:
				argv = append(argv, "-test.short")
			}
			return argv, src
		},
		parse: parseGo,
	}
}

// goRunPattern selects the named tests' top-level tests (a subtest is
// rerun with its parent, which may set it up).
func goRunPattern(names []string) string {
	seen := map[string]bool{}
	var alts []string
	for _, n := range names {
		top := strings.Split(n, "/")[0]
		if !seen[top] {
			seen[top] = true
			alts = append(alts, regexp.QuoteMeta(top))
		}
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}

// wholeFileSkip is regrtest's line for a test file it did not run (a
// resource denied, a module missing).
var wholeFileSkip = regexp.MustCompile(`(?m)^\S+ skipped -- (.*)$`)

var pyOutcome = regexp.MustCompile(`^(\S+) \(([\w.]+)\)(?: \(.*\))? \.\.\. (ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$`)
var pyFailHeader = regexp.MustCompile(`^(FAIL|ERROR): (\S+) \(([\w.]+)\)(.*)$`)

// parsePython reads regrtest's JUnit file for passes and skips, and the
// FAIL:/ERROR: headers of unittest's report for every failure (subtests
// and setUpClass errors included, which the JUnit file leaves unnamed).
// Without the JUnit file (the run died), the verbose lines are read.
func parsePython(outDir, output string) (map[string]caseResult, error) {
	cases := map[string]caseResult{}
	data, err := os.ReadFile(filepath.Join(outDir, "junit.xml"))
	if err == nil {
		var doc struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Skipped *struct {
					Text string `xml:",chardata"`
				} `xml:"skipped"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
				Error *struct {
					Message string `xml:"message,attr"`
				} `xml:"error"`
			} `xml:"testsuite>testcase"`
		}
		if err := xml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("junit.xml: %w", err)
		}
		for _, c := range doc.Cases {
			if c.Name == "" {
				continue // a test whose subtests failed: named by its header below
			}
			switch {
			case c.Failure != nil:
				cases[c.Name] = caseResult{failed, lastLines(c.Failure.Message, 3)}
			case c.Error != nil:
				cases[c.Name] = caseResult{failed, lastLines(c.Error.Message, 3)}
			case c.Skipped != nil:
				cases[c.Name] = caseResult{skipped, c.Skipped.Text}
			default:
				cases[c.Name] = caseResult{passed, ""}
			}
		}
	} else {
		for _, line := range strings.Split(output, "\n") {
			m := pyOutcome.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			switch v := m[3]; {
			case v == "ok" || v == "expected failure":
				cases[m[2]] = caseResult{passed, ""}
			case strings.HasPrefix(v, "skipped"):
				cases[m[2]] = caseResult{skipped, strings.TrimPrefix(v, "skipped ")}
			default:
				cases[m[2]] = caseResult{failed, v}
			}
		}
	}
	lines := strings.Split(output, "\n")
	for i, line := range lines {
		m := pyFailHeader.FindStringSubmatch(line)
		if m == nil || i == 0 || !strings.HasPrefix(lines[i-1], "=====") {
			continue
		}
		id := m[3]
		if m[2] == "setUpClass" || m[2] == "tearDownClass" || m[2] == "setUpModule" {
			id = m[3] + "." + m[2]
		}
		// The traceback's last line says what went wrong.
		detail := m[1] + m[4]
		// The header's own rule of dashes comes first; the next rule (or
		// the next header's) ends the traceback.
		for j, l := range lines[i+1:] {
			if strings.HasPrefix(l, "=====") || j > 0 && strings.HasPrefix(l, "-----") {
				break
			}
			if l != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "Traceback") && !strings.HasPrefix(l, "---") {
				detail = m[1] + m[4] + ": " + l
			}
		}
		cases[id] = caseResult{failed, detail}
	}
	if len(cases) == 0 {
		return nil, errors.New("no test outcome in the output")
	}
	return cases, nil
}

var (
	goOutcome = regexp.MustCompile(`^\x16?\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
	goSwitch  = regexp.MustCompile(`^\x16?=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)`)
)

// parseGo reads go test -v=test2json outcome lines. A case's detail is
// its own log: with test2json framing, "=== NAME" says whose output
// follows when parallel tests interleave.
func parseGo(_, output string) (map[string]caseResult, error) {
	cases := map[string]caseResult{}
	logs := map[string][]string{}
	current := ""
	// The framing byte may follow output that did not end its line.
	output = strings.ReplaceAll(output, "\x16", "\n\x16")
	for _, line := range strings.Split(output, "\n") {
		if m := goSwitch.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		m := goOutcome.FindStringSubmatch(line)
		if m == nil {
			if current != "" && strings.TrimSpace(line) != "" {
				logs[current] = append(logs[current], strings.TrimSpace(line))
			}
			continue
		}
		log := logs[m[2]]
		detail := strings.Join(log[max(0, len(log)-3):], " | ")
		switch m[1] {
		case "PASS":
			cases[m[2]] = caseResult{passed, ""}
		case "SKIP":
			cases[m[2]] = caseResult{skipped, detail}
		default:
			cases[m[2]] = caseResult{failed, detail}
		}
		current = ""
	}
	if len(cases) == 0 {
		return nil, errors.New("no test outcome in the output")
	}
	return cases, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// suites are the upstream suites, with CI's sample of each. The samples
// keep the whole package near 4 minutes on 2 CPUs; make realsoftware
// runs everything.
func suites() []suite {
	pyOnly := func(name string, ciOnly []string, ciSkip ...string) suite {
		var excluded map[string]string
		if name == "test_socket" {
			excluded = map[string]string{
				"ThreadedVSOCKSocketStreamTest": "hangs natively on a VM with a vsock device: the client's connect to the local CID fails (ENODEV) and the server's accept waits forever",
			}
		}
		return pythonSuite(name, 15*time.Minute, ciOnly, ciSkip, excluded)
	}
	py := func(name string, ciSkip ...string) suite { return pyOnly(name, nil, ciSkip...) }
	return []suite{
		py("test_socket", "NetworkConnectionBehaviourTest", "test_sendall_interrupted*", "TCPTimeoutTest",
			"UDPTimeoutTest", "UDPLITETimeoutTest", "testReadAfterTimeout", "TCPCloserTest", "testWithTimeoutTriggeredSend"),
		py("test_selectors", "test_select_interrupt_noraise", "test_select_interrupt_exc", "test_timeout"),
		py("test_socketserver"),
		py("test_httpservers"),
		py("test_urllib2_localnet"),
		// Most of test_ssl's threaded cases take a second each, waiting for
		// their server thread; CI runs the socket-level ones and a few.
		pyOnly("test_ssl", []string{"BasicSocketTests", "ContextTests", "SSLErrorTests", "SimpleBackgroundTests",
			"TestPreHandshakeClose", "*.ThreadedTests.test_echo", "*.ThreadedTests.test_recv_send", "*.ThreadedTests.test_sendfile",
			"*.ThreadedTests.test_check_hostname", "*.ThreadedTests.test_handshake_timeout", "*.ThreadedTests.test_server_accept"},
			"test_read_write_zero", "test_bio_read_write_data", "test_makefile_close", "test_transport_eof", "test_connect_ex"),
		py("test_asyncio.test_sock_lowlevel"),
		py("test_asyncio.test_events", "test_run_in_executor_cancel"),
		py("test_asyncio.test_sendfile"),
		py("test_asyncio.test_streams"),
		py("test_asyncio.test_unix_events"),
		py("test_asyncio.test_base_events"),
		py("test_asyncio.test_selector_events"),
		py("test_asyncio.test_server"),
		py("test_asyncio.test_ssl", "test_shutdown_cleanly", "test_create_connection_ssl_slow_handshake",
			"test_start_tls_slow_client_cancel", "test_flush_before_shutdown"),
		py("test_asyncio.test_sslproto", "test_start_tls_slow_client_cancel", "test_create_connection_ssl_slow_handshake"),
		goSuite("net", 20*time.Minute),
		goSuite("net/http", 20*time.Minute),
	}
}

// figures is one line of the report printed at the end.
type figures struct {
	suite, mode                         string
	run, pass, fail, skip, wrappedFails int
	elapsed                             time.Duration
	note                                string
}

var report struct {
	sync.Mutex
	rows []figures
}

func printReport() {
	report.Lock()
	defer report.Unlock()
	if len(report.rows) == 0 {
		return
	}
	fmt.Printf("\n%-34s %-9s %6s %6s %5s %5s %8s %13s\n", "suite", "mode", "run", "passed", "fail", "skip", "time", "wrapped-only")
	for _, r := range report.rows {
		wo := "-"
		if r.mode != "native" {
			wo = fmt.Sprint(r.wrappedFails)
		}
		fmt.Printf("%-34s %-9s %6d %6d %5d %5d %7.1fs %13s %s\n", r.suite, r.mode, r.run, r.pass, r.fail, r.skip, r.elapsed.Seconds(), wo, r.note)
	}
}

// TestSuites runs each upstream suite natively, under an allow-all policy
// and under an emulating policy, and requires the same outcome for every
// test case. Cases that fail natively are left out of the comparison with
// their reason; a case that differs is run again alone, natively and
// wrapped, and counts when it still fails wrapped only.
func TestSuites(t *testing.T) {
	want := map[string]bool{}
	for _, s := range strings.Split(*suitesFlag, ",") {
		if s != "" {
			want[s] = true
		}
	}
	wantMode := map[string]bool{}
	for _, s := range strings.Split(*modesFlag, ",") {
		if s != "" {
			wantMode[s] = true
		}
	}
	for _, s := range suites() {
		if len(want) > 0 && !want[s.name] && !want[strings.NewReplacer(" ", "_", "/", "_").Replace(s.name)] {
			continue
		}
		t.Run(strings.ReplaceAll(s.name, "/", "_"), func(t *testing.T) {
			if !*wholeFlag && s.sample != "" {
				t.Logf("sample: %s; make realsoftware runs the whole suite", s.sample)
			}
			for pat, why := range s.excluded {
				t.Logf("left out of every run: %s: %s", pat, why)
			}
			native := runSuite(t, s, "native", "", nil)
			record(s, native, 0, "")
			if m := wholeFileSkip.FindStringSubmatch(native.output); native.broken != "" && m != nil {
				t.Skipf("regrtest skips the whole file on this machine: %s", m[1])
			}
			if native.broken != "" {
				t.Fatalf("native run: %s\n%s", native.broken, testutil.Tail(native.output, 30))
			}
			var excluded []string
			for id, c := range native.cases {
				if c.status == failed {
					excluded = append(excluded, fmt.Sprintf("%s: %s", id, c.detail))
				}
			}
			sort.Strings(excluded)
			for _, e := range excluded {
				t.Logf("fails natively, left out of the comparison: %s", e)
			}
			for _, m := range suiteModes[1:] {
				if len(wantMode) > 0 && !wantMode[m.name] {
					continue
				}
				t.Run(m.name, func(t *testing.T) {
					w := runSuite(t, s, m.name, m.args, nil)
					if w.broken != "" {
						record(s, w, len(differences(native, w)), w.broken)
						t.Fatalf("%s: %s\n%s", m.name, w.broken, testutil.Tail(w.output, 30))
					}
					diffs := differences(native, w)
					if w.exit != native.exit && len(diffs) == 0 {
						// Every case agrees, yet the wrapper died at the end
						// or the program's exit went astray. (A differing
						// case explains another exit; its rerun decides.)
						t.Errorf("%s: exit status %d wrapped, %d natively:\n%s", m.name, w.exit, native.exit, testutil.Tail(w.output, 30))
					}
					var confirmed []string
					if len(diffs) > 0 {
						confirmed = confirm(t, s, m, w, diffs)
					}
					record(s, w, len(confirmed), "")
					for _, d := range confirmed {
						t.Errorf("wrapped-only failure: %s", d)
					}
				})
			}
		})
	}
}

// differences names the cases that did not fail natively but have
// another outcome wrapped: failed, missing, or skipped where they passed
// (or the reverse: a skip decided by what a socket call returned).
func differences(native, w *suiteRun) []string {
	var ids []string
	for id, n := range native.cases {
		if n.status == failed {
			continue
		}
		if c, ok := w.cases[id]; !ok || c.status != n.status {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// confirm runs the differing cases again alone, natively and wrapped:
// under 2 busy CPUs a timing-sensitive test may fail once in any mode. It
// returns the cases that still differ wrapped only, with the wrapped
// outcome's detail.
func confirm(t *testing.T, s suite, m struct{ name, args string }, first *suiteRun, ids []string) []string {
	w := runSuite(t, s, m.name+"-rerun", m.args, ids)
	n := runSuite(t, s, "native-rerun", "", ids)
	var out []string
	for _, id := range ids {
		wc, wok := w.cases[id]
		nc, nok := n.cases[id]
		switch {
		case !nok || nc.status == failed:
			t.Logf("fails natively when run again, left out: %s: %s", id, nc.detail)
		case !wok:
			out = append(out, fmt.Sprintf("%s: did not run wrapped: %s", id, lastLines(w.broken+"\n"+w.output, 3)))
		case wc.status != nc.status:
			out = append(out, fmt.Sprintf("%s: %s natively, %s wrapped: %s", id, nc.status, wc.status, wc.detail))
		default:
			fc := first.cases[id]
			t.Logf("differed once (%s wrapped), the same when run again (intermittent): %s: %s", fc.status, id, fc.detail)
		}
	}
	return out
}

func record(s suite, r *suiteRun, wrappedFails int, note string) {
	report.Lock()
	defer report.Unlock()
	report.rows = append(report.rows, figures{
		suite: s.name, mode: r.mode, run: len(r.cases), pass: r.count(passed), fail: r.count(failed),
		skip: r.count(skipped), wrappedFails: wrappedFails, elapsed: r.elapsed, note: note,
	})
}

// runSuite runs s once in a mode and parses its outcomes.
func runSuite(t *testing.T, s suite, mode, args string, only []string) *suiteRun {
	t.Helper()
	outDir := t.TempDir()
	if *keepFlag != "" {
		outDir = filepath.Join(*keepFlag, strings.NewReplacer("/", "_", " ", "_").Replace(s.name), mode)
		os.RemoveAll(outDir)
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	argv, dir := s.argv(t, outDir, *wholeFlag, only)
	timeout := s.timeout
	if !*wholeFlag || len(only) > 0 {
		timeout = sampleTimeout // a rerun is of a few cases
	}
	if args != "" {
		flags := []string{"-q"}
		if *keepFlag != "" {
			flags = []string{"--log-format", "json", "--log-file", filepath.Join(outDir, "connvisor.json")}
		}
		argv = bins.WrapArgv(append(flags, strings.Fields(args)...), argv...)
	}
	r := &suiteRun{mode: mode}
	start := time.Now()
	r.output, r.exit, r.broken = runBounded(dir, timeout, argv)
	r.elapsed = time.Since(start)
	if *keepFlag != "" {
		os.WriteFile(filepath.Join(outDir, "output.txt"), []byte(r.output), 0o644)
	}
	cases, err := s.parse(outDir, r.output)
	if err != nil && r.broken == "" {
		r.broken = fmt.Sprintf("exit %d: %v", r.exit, err)
	}
	r.cases = cases
	if r.cases == nil {
		r.cases = map[string]caseResult{}
	}
	return r
}

// runBounded runs argv in its own process group and kills the group when
// it outlives timeout (a hung test must not hang the harness), and once
// argv's own process has exited: a supervisor that died must not leave
// its program running, holding the output open.
func runBounded(dir string, timeout time.Duration, argv []string) (output string, exit int, broken string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = orphanGrace
	var b lockedBuilder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return "", -1, fmt.Sprintf("start %v: %v", argv, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	case <-time.After(timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return b.String(), -1, fmt.Sprintf("did not finish in %v", timeout)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		exit = ee.ExitCode()
	case errors.Is(err, exec.ErrWaitDelay):
		return b.String(), 0, fmt.Sprintf("exited, but its children still held the output %v later", orphanGrace)
	case err != nil:
		return b.String(), -1, err.Error()
	}
	return b.String(), exit, ""
}

// orphanGrace is how long the output may stay open after the command
// exited (a test's stray child finishing up).
const orphanGrace = 10 * time.Second

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
