package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

//go:embed c/target.c
var targetSource []byte

//go:embed c/floor.c
var floorSource []byte

//go:embed c/syscost.c
var syscostSource []byte

// Config sizes a run. Every measurement is repeated Rounds times, the
// variants interleaved within a round, and the median round is reported.
type Config struct {
	Rounds     int
	UDP        int // bare UDP connects per run
	TCP        int // whole TCP cycles per run
	UNIX       int // whole UNIX stream cycles per run
	Untrapped  int // getppid or read calls per run
	HTTPReqs   int // requests per HTTP run
	HTTPConc   int // concurrent HTTP clients
	StormConns int // connects per thread with 64 threads
	Blocked    int // concurrently blocked connects
	Stream     int // other connects timed around the blocked ones
	PolicyTime string
	Connvisor  string // the binary to measure; empty: build it
	Timeout    time.Duration
	Quick      bool   // the brief run
	Install    bool   // apt-get install the Debian packages of missing tools
	Only       string // comma-separated step names to run; empty: all
	Baseline   string // another connvisor binary measured beside it in table 8
}

func fullConfig() Config {
	return Config{Rounds: 7, UDP: 20000, TCP: 5000, UNIX: 5000, Untrapped: 2000000,
		HTTPReqs: 5000, HTTPConc: 8, StormConns: 200, Blocked: 1000, Stream: 2000,
		PolicyTime: "300ms", Timeout: 2 * time.Minute, Install: true}
}

func quickConfig() Config {
	return Config{Rounds: 3, UDP: 2000, TCP: 500, UNIX: 500, Untrapped: 200000,
		HTTPReqs: 500, HTTPConc: 8, StormConns: 20, Blocked: 1000, Stream: 300,
		PolicyTime: "2000x", Timeout: time.Minute, Quick: true}
}

const stormThreads = 64

// bench holds what one run built and measured.
type bench struct {
	cfg     Config
	out     io.Writer
	dir     string // temporary: binaries, UNIX socket paths
	target  string
	syscost string
	floor   string
	cv      string
	strace  string // empty when absent
	self    string // this binary, re-executed as the HTTP client
	modRoot string
}

// Run builds what it needs, runs every benchmark and prints the tables.
func Run(cfg Config, out io.Writer) error {
	dir, err := os.MkdirTemp("", "connvisor-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{cfg: cfg, out: out, dir: dir}
	if err := b.build(); err != nil {
		return err
	}
	b.machine()
	steps := []struct {
		name string
		f    func() error
	}{
		{"latency", b.latency},
		{"untrapped", b.untrapped},
		{"throughput", b.throughput},
		{"scale", b.scale},
		{"policy", b.policy},
		{"real", b.realSoftware},
		{"syscalls", b.syscalls},
	}
	for _, s := range steps {
		if cfg.Only != "" && !slices.Contains(strings.Split(cfg.Only, ","), s.name) {
			continue
		}
		start := time.Now()
		if err := s.f(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(out, "(%s took %.1fs)\n\n", s.name, time.Since(start).Seconds())
	}
	return nil
}

func (b *bench) build() error {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("find the module root (run inside the connvisor module): %w", err)
	}
	b.modRoot = strings.TrimSpace(string(root))
	for _, c := range []struct {
		src  []byte
		name string
		libs []string
	}{{targetSource, "target", []string{"-lpthread"}}, {floorSource, "floor", nil}, {syscostSource, "syscost", nil}} {
		src := filepath.Join(b.dir, c.name+".c")
		if err := os.WriteFile(src, c.src, 0o644); err != nil {
			return err
		}
		bin := filepath.Join(b.dir, c.name)
		args := append([]string{"-O2", "-Wall", "-o", bin, src}, c.libs...)
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("gcc %s (needs gcc and libc6-dev): %v\n%s", c.name, err, out)
		}
	}
	b.target, b.floor = filepath.Join(b.dir, "target"), filepath.Join(b.dir, "floor")
	b.syscost = filepath.Join(b.dir, "syscost")
	b.cv = b.cfg.Connvisor
	if b.cv == "" {
		if b.cv, err = testutil.BuildConnvisor(b.dir); err != nil {
			return err
		}
	}
	if p, err := exec.LookPath("strace"); err == nil {
		b.strace = p
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b.self = self
	return nil
}

func (b *bench) machine() {
	model := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	syscall.Uname(&u)
	rel := func(a [65]int8) string {
		var s []byte
		for _, c := range a {
			if c == 0 {
				break
			}
			s = append(s, byte(c))
		}
		return string(s)
	}
	commit, _ := exec.Command("git", "-C", b.modRoot, "rev-parse", "--short", "HEAD").Output()
	if b.cfg.Connvisor != "" {
		commit = []byte("binary " + b.cfg.Connvisor)
	} else if dirty, _ := exec.Command("git", "-C", b.modRoot, "status", "--porcelain", "--", ".").Output(); len(dirty) > 0 {
		commit = append(bytes.TrimSpace(commit), "+uncommitted changes"...)
	}
	fmt.Fprintf(b.out, "Machine: %d CPUs (nproc), %s, Linux %s %s, %s, connvisor %s\n",
		runtime.NumCPU(), model, rel(u.Release), rel(u.Machine), runtime.Version(), strings.TrimSpace(string(commit)))
	fmt.Fprintf(b.out, "Config: %d interleaved rounds; UDP %d, TCP %d, UNIX %d connects per run\n\n",
		b.cfg.Rounds, b.cfg.UDP, b.cfg.TCP, b.cfg.UNIX)
}

// Positions in variants() of the rows other tables refer to.
const (
	allowAll     = 6
	floorEmulate = 7
	straceTrace  = 8
	straceInject = 9
)

// variant is one way of running a command: natively or under a supervisor.
type variant struct {
	name   string
	prefix []string // nil: native
	expect string   // what the connects must see: "ok" or "refused"
}

func (b *bench) variants() (vs []variant, notes []string) {
	denyUnix := "unix:" + b.dir + "/*=ECONNREFUSED"
	vs = []variant{
		{"native", nil, "ok"},
		{"floor: C supervisor, errno", []string{b.floor, "errno", "--"}, "refused"},
		{"floor: C supervisor, continue", []string{b.floor, "continue", "--"}, "ok"},
		// A deny rule that no connect here matches keeps the policy from
		// allowing everything, so every connect is decided and emulated
		// (an allow-all policy lets the kernel run the call: the last row).
		{"connvisor allow (emulated)", []string{b.cv, "run", "-q", "--deny", "192.0.2.123:9=EACCES", "--default", "allow", "--"}, "ok"},
		{"connvisor deny (errno)", []string{b.cv, "run", "-q", "--deny", "127.0.0.1=ECONNREFUSED", "--deny", denyUnix, "--default", "allow", "--"}, "refused"},
		{"connvisor --mode continue", []string{b.cv, "run", "-q", "--mode", "continue", "--deny", "192.0.2.123:9=EACCES", "--default", "allow", "--"}, "ok"},
		{"connvisor allow-all policy", []string{b.cv, "run", "-q", "--default", "allow", "--"}, "ok"},
		{"floor: C supervisor, emulate", []string{b.floor, "emulate", "--"}, "ok"},
	}
	if b.strace == "" {
		notes = append(notes, "strace rows skipped: strace is not installed (apt-get install strace)")
		return vs, notes
	}
	vs = append(vs,
		variant{"strace --seccomp-bpf trace", []string{b.strace, "-f", "--seccomp-bpf", "-e", "trace=connect", "-o", "/dev/null", "--"}, "ok"},
		variant{"strace --seccomp-bpf inject", []string{b.strace, "-f", "--seccomp-bpf", "-e", "inject=connect:error=ECONNREFUSED", "-o", "/dev/null", "--"}, "refused"})
	return vs, notes
}

// result is one line a program printed: "PREFIX key=value ...".
type result map[string]string

func (r result) float(k string) float64 {
	f, _ := strconv.ParseFloat(r[k], 64)
	return f
}

var resultLine = regexp.MustCompile(`^([A-Z_]+) (.*)$`)

func parseResults(out []byte) map[string]result {
	rs := map[string]result{}
	for _, line := range strings.Split(string(out), "\n") {
		m := resultLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := result{}
		for _, kv := range strings.Fields(m[2]) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				r[k] = v
			}
		}
		rs[m[1]] = r
	}
	return rs
}

// command builds argv under a process group of its own, killed whole when
// the run times out, so nothing outlives a failed benchmark.
func (b *bench) command(ctx context.Context, argv []string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// runOnce runs argv to completion and returns its RESULT line.
func (b *bench) runOnce(argv []string, env ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := b.command(ctx, argv, env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: timed out after %v", strings.Join(argv, " "), b.cfg.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(stderr.String()))
	}
	r, ok := parseResults(stdout.Bytes())["RESULT"]
	if !ok {
		return nil, fmt.Errorf("%s: no RESULT line in output\n%s%s", strings.Join(argv, " "), stdout.String(), tail(stderr.String()))
	}
	return r, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// checkOutcome fails a run whose connects did not do what the variant
// promises: a benchmark that measures the wrong thing must not pass.
func checkOutcome(v variant, r result, what string) error {
	n, errs := r["n"], r["errors"]
	switch v.expect {
	case "ok":
		if errs != "0" {
			return fmt.Errorf("%s under %q: %s of %s connects failed (%s)", what, v.name, errs, n, r["first_errno"])
		}
	case "refused":
		if errs != n || r["first_errno"] != "ECONNREFUSED" {
			return fmt.Errorf("%s under %q: %s of %s connects refused (first: %s), want all ECONNREFUSED", what, v.name, errs, n, r["first_errno"])
		}
	}
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// workload is one kind of work the C target does.
type workload struct {
	name string
	args []string
}

func (b *bench) latency() error {
	vs, notes := b.variants()
	ws := []workload{
		{"UDP connect", []string{"udp", strconv.Itoa(b.cfg.UDP), "9"}},
		{"TCP cycle", []string{"tcp", strconv.Itoa(b.cfg.TCP)}},
		{"UNIX cycle", []string{"unix", strconv.Itoa(b.cfg.UNIX), filepath.Join(b.dir, "cycle.sock")}},
	}
	// med[w][v]: per-op medians of each round, in ns
	med := make([][][]float64, len(ws))
	for i := range med {
		med[i] = make([][]float64, len(vs))
	}
	for round := 0; round < b.cfg.Rounds; round++ {
		for wi, w := range ws {
			for k := range vs {
				vi := (k + round) % len(vs) // rotate, so no variant always runs first
				v := vs[vi]
				argv := append(append(append([]string{}, v.prefix...), b.target), w.args...)
				r, err := b.runOnce(argv)
				if err != nil {
					return err
				}
				if err := checkOutcome(v, r, w.name); err != nil {
					return err
				}
				med[wi][vi] = append(med[wi][vi], r.float("median_ns"))
			}
		}
	}
	m := func(wi, vi int) float64 { return median(med[wi][vi]) / 1000 }
	t := &table{title: fmt.Sprintf("1. Latency per connect, µs: median over %d interleaved rounds of each run's per-operation median (timed inside the target)", b.cfg.Rounds)}
	head := []string{"variant"}
	for _, w := range ws {
		head = append(head, w.name, "×native", "added")
	}
	t.row(head...)
	for vi, v := range vs {
		row := []string{v.name}
		for wi := range ws {
			nat, x := m(wi, 0), m(wi, vi)
			row = append(row, f2(x), fmt.Sprintf("%.2f×", x/nat), f2(x-nat))
		}
		t.row(row...)
	}
	t.notes = append(notes,
		"TCP cycle: socket, connect, accept, close (client RST); UNIX cycle: socket, connect, accept, close.",
		"deny and inject rows: the connect fails at once, so their cycle has no accept and no handshake.")
	t.print(b.out)

	// The floor: one notification round trip, answered at once on the
	// target's CPU. A denied connect does the same work plus a decision;
	// an allowed one adds the decision and the connect done for the target.
	floor := m(0, 1)
	f := &table{title: "2. Against the floor (a minimal C supervisor answering at once with SYNC_WAKE_UP) and strace"}
	f.row("measure", "UDP connect", "TCP cycle", "UNIX cycle", "target")
	row := func(name, target string, val func(wi int) string) {
		r := []string{name}
		for wi := range ws {
			r = append(r, val(wi))
		}
		f.row(append(r, target)...)
	}
	row("floor: trapped connect answered with errno, µs", "", func(wi int) string { return f2(m(wi, 1)) })
	row("allow: connvisor's added latency ÷ floor", "≤ 1.5", func(wi int) string { return f2((m(wi, 3) - m(wi, 0)) / floor) })
	row("deny: connvisor's denied connect ÷ floor", "≤ 1.1", func(wi int) string { return f2(m(wi, 4) / m(wi, 1)) })
	row("continue: connvisor's added ÷ the C continue floor's added", "", func(wi int) string {
		return f2((m(wi, 5) - m(wi, 0)) / (m(wi, 2) - m(wi, 0)))
	})
	row("allow-all policy: connvisor's added ÷ the C continue floor's added", "", func(wi int) string {
		return f2((m(wi, allowAll) - m(wi, 0)) / (m(wi, 2) - m(wi, 0)))
	})
	// Issue 15's two UDP rows: added latency against the C supervisor that
	// does the same job with nothing else (emulate: dup, read, validate,
	// connect; errno: answer at once).
	row("allow: connvisor's added ÷ the C emulating floor's added", "≤ 1.0", func(wi int) string {
		return f2((m(wi, 3) - m(wi, 0)) / (m(wi, floorEmulate) - m(wi, 0)))
	})
	row("deny: connvisor's added ÷ the C errno floor's added", "≤ 1.2", func(wi int) string {
		return f2((m(wi, 4) - m(wi, 0)) / (m(wi, 1) - m(wi, 0)))
	})
	if b.strace != "" {
		row("strace trace added ÷ connvisor allow added", "≥ 5", func(wi int) string {
			return f2((m(wi, straceTrace) - m(wi, 0)) / (m(wi, 3) - m(wi, 0)))
		})
		row("strace inject ÷ connvisor deny (per connect)", "≥ 5", func(wi int) string { return f2(m(wi, straceInject) / m(wi, 4)) })
	}
	f.notes = []string{
		fmt.Sprintf("floor = %.2f µs: the UDP connect under the C supervisor (errno), the whole trapped call.", floor),
		"allow ÷ floor uses the UDP floor for every column; deny compares like with like (both answered with an errno).",
	}
	f.print(b.out)
	return nil
}

func (b *bench) untrapped() error {
	vs, _ := b.variants()
	keep := []variant{vs[0], vs[1], vs[3]}
	if b.strace != "" {
		keep = append(keep, vs[straceTrace])
	}
	ws := []workload{
		{"getppid", []string{"getppid", strconv.Itoa(b.cfg.Untrapped)}},
		{"read /dev/zero 1 B", []string{"read", strconv.Itoa(b.cfg.Untrapped)}},
	}
	med := make([][][]float64, len(ws))
	for i := range med {
		med[i] = make([][]float64, len(keep))
	}
	for round := 0; round < b.cfg.Rounds; round++ {
		for wi, w := range ws {
			for k := range keep {
				vi := (k + round) % len(keep)
				argv := append(append(append([]string{}, keep[vi].prefix...), b.target), w.args...)
				r, err := b.runOnce(argv)
				if err != nil {
					return err
				}
				med[wi][vi] = append(med[wi][vi], r.float("median_ns"))
			}
		}
	}
	t := &table{title: "3. Untrapped system calls, ns per call (batches of 1000; median over rounds): the filter's own cost"}
	t.row("variant", "getppid", "×native", "read 1 B", "×native")
	for vi, v := range keep {
		row := []string{v.name}
		for wi := range ws {
			nat, x := median(med[wi][0]), median(med[wi][vi])
			row = append(row, fmt.Sprintf("%.0f", x), fmt.Sprintf("%.3f×", x/nat))
		}
		t.row(row...)
	}
	t.notes = []string{"target: within 5 % of native (≤ 1.05×) for connvisor."}
	t.print(b.out)
	return nil
}

func (b *bench) throughput() error {
	srv, url, err := startHTTP()
	if err != nil {
		return err
	}
	defer srv.Close()
	vs, _ := b.variants()
	keep := []variant{vs[0], vs[3], vs[5]}
	type meas struct{ http, storm []float64 }
	res := make([]meas, len(keep))
	for round := 0; round < b.cfg.Rounds; round++ {
		for k := range keep {
			vi := (k + round) % len(keep)
			v := keep[vi]
			argv := append(append([]string{}, v.prefix...), b.self, url, strconv.Itoa(b.cfg.HTTPReqs), strconv.Itoa(b.cfg.HTTPConc))
			r, err := b.runOnce(argv, helperEnv+"=httpclient")
			if err != nil {
				return err
			}
			if r["errors"] != "0" {
				return fmt.Errorf("HTTP client under %q: %s errors (%s)", v.name, r["errors"], r["first_error"])
			}
			res[vi].http = append(res[vi].http, r.float("rate"))
			argv = append(append([]string{}, v.prefix...), b.target, "threads", strconv.Itoa(stormThreads), strconv.Itoa(b.cfg.StormConns))
			r, err = b.runOnce(argv)
			if err != nil {
				return err
			}
			if r["errors"] != "0" {
				return fmt.Errorf("%d connecting threads under %q: %s connects failed", stormThreads, v.name, r["errors"])
			}
			res[vi].storm = append(res[vi].storm, r.float("rate"))
		}
	}
	t := &table{title: "4. Throughput (median over rounds)"}
	t.row("variant", fmt.Sprintf("HTTP req/s (c=%d, no keep-alive)", b.cfg.HTTPConc), "×native",
		fmt.Sprintf("TCP cycles/s (%d threads)", stormThreads), "×native")
	for vi, v := range keep {
		h, s := median(res[vi].http), median(res[vi].storm)
		t.row(v.name, fmt.Sprintf("%.0f", h), fmt.Sprintf("%.2f×", h/median(res[0].http)),
			fmt.Sprintf("%.0f", s), fmt.Sprintf("%.2f×", s/median(res[0].storm)))
	}
	t.notes = []string{
		fmt.Sprintf("HTTP: a Go client (DisableKeepAlives, %d requests) against a Go server in the bench process, both on loopback.", b.cfg.HTTPReqs),
		fmt.Sprintf("threads: the C target, %d pthreads each doing %d whole TCP cycles (blocking connect) against a listener of its own.", stormThreads, b.cfg.StormConns),
		"target: HTTP throughput ≥ 0.8× native.",
	}
	t.print(b.out)
	return nil
}

func startHTTP() (*http.Server, string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String() + "/", nil
}

// scaleRun is one run of the target's "blocked" mode.
type scaleRun struct {
	res      map[string]result
	blocked  int
	rssKiB   int
	threads  int
	exitTime time.Duration // from the target's exit to the supervisor's
}

func (b *bench) scaleOnce(v variant) (scaleRun, error) {
	var sr scaleRun
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	argv := append(append([]string{}, v.prefix...), b.target, "blocked", strconv.Itoa(b.cfg.Blocked), strconv.Itoa(b.cfg.Stream))
	cmd := b.command(ctx, argv)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return sr, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return sr, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return sr, err
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if sc.Text() == "READY" {
			ready = true
			break
		}
	}
	if ready && v.prefix != nil {
		// The supervisor is the process we started (connvisor run).
		sr.rssKiB, sr.threads = procStatus(cmd.Process.Pid)
	}
	stdin.Write([]byte("done\n"))
	stdin.Close()
	exited := time.Now()
	io.Copy(&out, stdout)
	err = cmd.Wait()
	sr.exitTime = time.Since(exited)
	if ctx.Err() != nil {
		return sr, fmt.Errorf("%s: timed out after %v (blocked connects not cleaned up?)\n%s", strings.Join(argv, " "), b.cfg.Timeout, tail(stderr.String()))
	}
	if !ready || err != nil {
		return sr, fmt.Errorf("%s: %v\n%s%s", strings.Join(argv, " "), err, out.String(), tail(stderr.String()))
	}
	sr.res = parseResults(out.Bytes())
	sr.blocked, _ = strconv.Atoi(sr.res["BLOCKED"]["n"])
	for _, k := range []string{"BEFORE_UDP", "BEFORE_TCP", "DURING_UDP", "DURING_TCP"} {
		if r, ok := sr.res[k]; !ok || r["errors"] != "0" {
			return sr, fmt.Errorf("%s under %q: %v", k, v.name, r)
		}
	}
	return sr, nil
}

// procStatus reads VmRSS (KiB) and Threads of pid.
func procStatus(pid int) (rss, threads int) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			rss, _ = strconv.Atoi(f[0])
		case "Threads":
			threads, _ = strconv.Atoi(f[0])
		}
	}
	return rss, threads
}

func (b *bench) scale() error {
	vs, _ := b.variants()
	keep := []variant{vs[0], vs[3]}
	rounds := max(1, b.cfg.Rounds/2)
	runs := make([][]scaleRun, len(keep))
	for round := 0; round < rounds; round++ {
		for vi, v := range keep {
			sr, err := b.scaleOnce(v)
			if err != nil {
				return err
			}
			runs[vi] = append(runs[vi], sr)
		}
	}
	pick := func(vi int, f func(scaleRun) float64) float64 {
		var xs []float64
		for _, r := range runs[vi] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	lat := func(k string) func(scaleRun) float64 {
		return func(r scaleRun) float64 { return r.res[k].float("median_ns") / 1000 }
	}
	t := &table{title: fmt.Sprintf("5. Scale: %d blocking connects held (SYN_SENT to a listener whose queue is full) while others are timed; median over %d rounds", b.cfg.Blocked, rounds)}
	t.row("variant", "blocked", "UDP µs before", "during", "×", "TCP cycle µs before", "during", "×", "supervisor RSS MiB", "threads", "exit after target s")
	for vi, v := range keep {
		ub, ud := pick(vi, lat("BEFORE_UDP")), pick(vi, lat("DURING_UDP"))
		tb, td := pick(vi, lat("BEFORE_TCP")), pick(vi, lat("DURING_TCP"))
		rss, thr, ex := "-", "-", "-"
		if v.prefix != nil {
			rss = fmt.Sprintf("%.1f", pick(vi, func(r scaleRun) float64 { return float64(r.rssKiB) / 1024 }))
			thr = fmt.Sprintf("%.0f", pick(vi, func(r scaleRun) float64 { return float64(r.threads) }))
			ex = fmt.Sprintf("%.2f", pick(vi, func(r scaleRun) float64 { return r.exitTime.Seconds() }))
		}
		t.row(v.name, fmt.Sprintf("%.0f", pick(vi, func(r scaleRun) float64 { return float64(r.blocked) })),
			f2(ub), f2(ud), fmt.Sprintf("%.2f×", ud/ub), f2(tb), f2(td), fmt.Sprintf("%.2f×", td/tb), rss, thr, ex)
	}
	t.notes = []string{
		fmt.Sprintf("stream: %d UDP connects and %d TCP cycles before the blocked connects start and while they are held.", b.cfg.Stream, b.cfg.Stream),
		"RSS and threads: /proc/PID/status of the connvisor process while the connects are blocked. Targets: RSS < 30 MiB; the others' latency does not grow.",
	}
	t.print(b.out)
	return nil
}

var benchLine = regexp.MustCompile(`^BenchmarkDecide/rules=(\d+)/(\w+)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+(\d+) B/op\s+(\d+) allocs/op)?`)

func (b *bench) policy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "Decide", "-benchtime", b.cfg.PolicyTime, "./policy/")
	cmd.Dir = b.modRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -bench Decide ./policy/: %v\n%s", err, tail(string(out)))
	}
	type cell struct{ ns, allocs string }
	cells := map[string]map[string]cell{}
	var order []string
	for _, line := range strings.Split(string(out), "\n") {
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if cells[m[1]] == nil {
			cells[m[1]] = map[string]cell{}
			order = append(order, m[1])
		}
		cells[m[1]][m[2]] = cell{m[3], m[5]}
	}
	if len(order) == 0 {
		return errors.New("go test -bench Decide ./policy/ printed no BenchmarkDecide lines:\n" + tail(string(out)))
	}
	t := &table{title: "6. Policy decision cost (go test -bench Decide ./policy/), ns per decision (allocs)"}
	t.row("rules", "late match", "no match (default)", "IPv6")
	for _, n := range order {
		row := []string{n}
		for _, k := range []string{"late", "none", "v6"} {
			c, ok := cells[n][k]
			if !ok {
				row = append(row, "-")
				continue
			}
			s := c.ns
			if c.allocs != "" {
				s += " (" + c.allocs + ")"
			}
			row = append(row, s)
		}
		t.row(row...)
	}
	t.notes = []string{"benchtime " + b.cfg.PolicyTime + "; see policy/bench_test.go for the rule sets."}
	t.print(b.out)
	return nil
}

func f2(x float64) string { return fmt.Sprintf("%.2f", x) }

// table prints rows with the first column left-aligned and the others
// right-aligned.
type table struct {
	title string
	rows  [][]string
	notes []string
}

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) print(w io.Writer) {
	width := map[int]int{}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	fmt.Fprintln(w, t.title)
	for ri, r := range t.rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i == 0 {
				line.WriteString(c + pad)
			} else {
				line.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(line.String(), " "))
		if ri == 0 {
			total := 0
			for i := 0; i < len(width); i++ {
				total += width[i] + 2
			}
			fmt.Fprintln(w, strings.Repeat("-", total-2))
		}
	}
	for _, n := range t.notes {
		fmt.Fprintln(w, "  "+n)
	}
	fmt.Fprintln(w)
}

// syscalls times, one by one, the calls a supervisor makes to emulate an
// allowed connect: the parts that the latency table adds up.
func (b *bench) syscalls() error {
	var names []string
	costs := map[string][]float64{}
	for round := 0; round < b.cfg.Rounds; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
		out, err := b.command(ctx, []string{b.syscost, strconv.Itoa(b.cfg.UDP)}).Output()
		cancel()
		if err != nil {
			return fmt.Errorf("syscost: %v", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			m := resultLine.FindStringSubmatch(line)
			if m == nil || m[1] != "COST" {
				continue
			}
			r := parseResults([]byte(line))["COST"]
			if _, ok := costs[r["name"]]; !ok {
				names = append(names, r["name"])
			}
			costs[r["name"]] = append(costs[r["name"]], r.float("median_ns"))
		}
	}
	if len(names) == 0 {
		return errors.New("syscost printed no COST lines")
	}
	t := &table{title: "7. Where the time goes: each call a supervisor makes per emulated connect, ns (median)"}
	t.row("system call", "ns")
	for _, n := range names {
		t.row(strings.ReplaceAll(n, "~", " "), fmt.Sprintf("%.0f", median(costs[n])))
	}
	t.notes = []string{
		"timed alone against a real target blocked in a trapped connect (c/syscost.c).",
		"the notification round trip itself is the floor in table 2.",
	}
	t.print(b.out)
	return nil
}
