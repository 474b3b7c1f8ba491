// Package difffuzz is connvisor's differential fuzzer of the whole trapped
// surface: cprog/fuzz.c makes random, seeded, deterministic connect, sendto,
// sendmsg and sendmmsg calls (valid and hostile addresses, lengths, pointers,
// iovecs, control messages and flags, on every kind of socket and on things
// that are not sockets) against receivers of its own, and prints one line per
// call: the call, its result and errno, and what the receivers got (bytes,
// descriptors, credentials). The test runs it natively and under connvisor,
// with a policy that makes every call emulated and with the embedded default
// policy, and compares the outputs call by call.
//
//	go test ./test/difffuzz                                   # the CI seeds
//	DIFFFUZZ_SEEDS=64 DIFFFUZZ_CALLS=5000 go test ./test/difffuzz -timeout 2h   # make difffuzz
//	DIFFFUZZ_STRICT=1 go test ./test/difffuzz                 # known differences fail too
//	DIFFFUZZ_DUMP=/tmp/diffs.json go test ./test/difffuzz     # every difference, one JSON a line
//	DIFFFUZZ_CONNVISOR=/path/connvisor go test ./test/difffuzz  # compare another build
//
// A difference fails the test unless it is listed, with its reason, in
// inherentDiffs (what emulation cannot make identical) or knownDiffs (gaps
// issue 11 tracks, to be emptied as they are fixed). A supervisor crash, a
// hang, a missing line or a failed liveness probe always fails.
package difffuzz

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	connvisorBin string
	fuzzBin      string
)

func TestMain(m *testing.M) {
	// The program drops to nobody for half the seeds: it must still run.
	// DIFFFUZZ_CONNVISOR is another build to compare (an older release, a
	// patched tree).
	build := testutil.Build{Name: "difffuzz", Shared: true, Connvisor: os.Getenv("DIFFFUZZ_CONNVISOR")}
	testutil.Main(build, func(b *testutil.Bins) int {
		connvisorBin = b.Connvisor
		if _, err := exec.LookPath("gcc"); err != nil {
			fmt.Fprintln(os.Stderr, "difffuzz: no gcc, cprog/fuzz.c cannot be built; the tests skip")
		} else if fuzzBin, err = b.CC("gcc", "fuzz", "-O2", "-Wall", "-Wextra", "-Werror", filepath.Join("cprog", "fuzz.c")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	})
}

func needFuzz(t *testing.T) {
	t.Helper()
	if fuzzBin == "" {
		t.Skip("gcc is missing: cprog/fuzz.c was not built")
	}
	if os.Geteuid() != 0 {
		t.Skip("the fuzz program runs as root (it drops to nobody for half the seeds, and root may claim other credentials)")
	}
}

// A mode is one way of wrapping the program, with what its deny probe
// must observe wrapped.
type mode struct {
	name string
	args []string // connvisor's, before "--"
	// probe is the program's -d: what its deny probe connects to.
	probe string
	// denyErrno is what the deny probe must get wrapped.
	denyErrno string
}

var modes = []mode{
	// One deny rule that no fuzzed call can match except the probe's (and
	// the "denied" destination, which the program also fuzzes): every
	// call is decided and performed by connvisor.
	{name: "emulated", args: []string{"run", "-q", "--default", "allow", "--deny", "127.0.0.99:9=EACCES", "--allow-raw"},
		probe: "inet", denyErrno: "EACCES"},
	// No policy flag: the embedded default (loopback and UNIX allowed,
	// everything else EPERM). Its deny probe is a netlink connect to a
	// user port id: natively it connects, the default denies it (netlink
	// to the kernel is not egress, and allowed).
	{name: "default", args: []string{"run", "-q"}, probe: "netlink", denyErrno: "EPERM"},
}

// nativeDeny is what the deny probe gets natively: nothing listens on
// 127.0.0.99:9, and a netlink socket may connect to any port id.
var nativeDeny = map[string]string{"inet": "ECONNREFUSED", "netlink": "0"}

// A seed is one run of the program: calls count calls from seed, as root
// or as nobody.
type seed struct {
	seed   uint64
	calls  int
	nobody bool
}

// ciSeeds are the seeds CI runs: 20,000 calls, half of them as nobody
// (where SCM_CREDENTIALS with other ids is EPERM natively).
func ciSeeds() []seed {
	n, calls, first := envInt("DIFFFUZZ_SEEDS", 8), envInt("DIFFFUZZ_CALLS", 2500), envInt("DIFFFUZZ_FIRST", 1)
	var s []seed
	for i := 0; i < n; i++ {
		s = append(s, seed{seed: uint64(first + i), calls: calls, nobody: i%2 == 1})
	}
	return s
}

func envInt(name string, def int) int {
	v, err := strconv.Atoi(os.Getenv(name))
	if err != nil || v <= 0 {
		return def
	}
	return v
}

// run is one execution of the program.
type run struct {
	argv   []string
	lines  map[int]string // call index -> line
	order  []int
	probes map[int]string // call index -> probe line
	end    string         // the "end fds=" line, "" when missing
	stderr string
	err    error
	took   time.Duration
}

var callLine = regexp.MustCompile(`^(\d+) (connect|sendto|sendmsg|sendmmsg) `)
var probeLine = regexp.MustCompile(`^(\d+) probe (.*)$`)

func execute(ctx context.Context, prefix []string, s seed, probe string) *run {
	args := []string{"-d", probe}
	if s.nobody {
		args = append(args, "-u")
	}
	args = append(args, strconv.FormatUint(s.seed, 10), strconv.Itoa(s.calls))
	argv := append(append(append([]string{}, prefix...), fuzzBin), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := &run{argv: argv, lines: map[int]string{}, probes: map[int]string{}, stderr: stderr.String(), err: err, took: time.Since(start)}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if m := callLine.FindStringSubmatch(l); m != nil {
			i, _ := strconv.Atoi(m[1])
			r.lines[i] = l
			r.order = append(r.order, i)
		} else if m := probeLine.FindStringSubmatch(l); m != nil {
			i, _ := strconv.Atoi(m[1])
			r.probes[i] = m[2]
		} else if strings.HasPrefix(l, "end ") {
			r.end = l
		}
	}
	return r
}

// split cuts a call line into the call's description and its outcome
// (result, errno, socket state, what was received).
func split(line string) (desc, outcome string) {
	d, o, ok := strings.Cut(line, " -> ")
	if !ok {
		return line, "(no outcome: " + line + ")"
	}
	// A failed setup step is printed where it happened, among the
	// description, but it is an outcome (a setup connect is trapped too).
	if setup := setupFailure.FindAllString(d, -1); setup != nil {
		d = setupFailure.ReplaceAllString(d, "")
		o = strings.Join(setup, "") + " " + o
	}
	return d, o
}

var setupFailure = regexp.MustCompile(` SETUP-\S+`)

// A diff is one call whose outcome differs.
type diff struct {
	mode    string
	seed    seed
	index   int
	desc    string
	native  string
	wrapped string
}

func (d diff) repro() string {
	u := ""
	if d.seed.nobody {
		u = "-u "
	}
	return fmt.Sprintf("fuzz %s-s %d %d 1", u, d.index, d.seed.seed)
}

// TestDifferential runs every seed natively and in every mode and compares
// the outputs call by call.
func TestDifferential(t *testing.T) {
	needFuzz(t)
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-20*time.Second))
		defer cancel()
	}
	seeds := ciSeeds()
	// Native probe outcomes of each kind, once, so the deny probe's
	// wrapped errno is known to differ from what the kernel would say.
	for kind, want := range nativeDeny {
		r := execute(ctx, nil, seed{seed: 1, calls: 0}, kind)
		got := probeField(r.probes[0], "deny")
		if got != want {
			t.Fatalf("deny probe %s natively: %q, want %q (output %v, %v)", kind, got, want, r.probes, r.err)
		}
	}

	type job struct {
		s    seed
		mode *mode // nil: native
	}
	var jobs []job
	for _, s := range seeds {
		jobs = append(jobs, job{s, nil})
		for i := range modes {
			jobs = append(jobs, job{s, &modes[i]})
		}
	}
	results := make([]*run, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2) // 2 CPUs
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if j.mode == nil {
				results[i] = execute(ctx, nil, j.s, "inet")
				return
			}
			prefix := append(append([]string{connvisorBin}, j.mode.args...), "--")
			results[i] = execute(ctx, prefix, j.s, j.mode.probe)
		}()
	}
	wg.Wait()

	total := 0
	var diffs []diff
	for i := 0; i < len(jobs); i += 1 + len(modes) {
		native := results[i]
		s := jobs[i].s
		total += s.calls
		t.Logf("seed %d (%d calls%s): native %v in %v", s.seed, s.calls, map[bool]string{true: ", as nobody"}[s.nobody], errOrOK(native.err), native.took.Round(time.Millisecond))
		if native.err != nil || len(native.lines) != s.calls || native.end != "end fds=+0" {
			t.Errorf("seed %d: native run incomplete (%v, %d of %d lines, %q); stderr:\n%s", s.seed, native.err, len(native.lines), s.calls, native.end, testutil.Tail(native.stderr, 10))
			continue
		}
		for k, m := range modes {
			w := results[i+1+k]
			t.Logf("seed %d %s: %v in %v", s.seed, m.name, errOrOK(w.err), w.took.Round(time.Millisecond))
			diffs = append(diffs, compare(t, m, s, native, w)...)
		}
	}
	report(t, total, diffs)
}

// compare checks one wrapped run against the native one: crashes, hangs,
// liveness, then each call's outcome. It returns the calls that differ.
func compare(t *testing.T, m mode, s seed, native, w *run) []diff {
	t.Helper()
	name := fmt.Sprintf("seed %d %s", s.seed, m.name)
	if crash := supervisorCrash(w.stderr); crash != "" {
		t.Errorf("%s: the supervisor crashed (every later call fails with ENOSYS); first ENOSYS at call %d; reproduce with: %s\n%s",
			name, firstENOSYS(w), strings.Join(w.argv, " "), crash)
	}
	if w.err != nil {
		t.Errorf("%s: wrapped run: %v (native: %v); stderr:\n%s", name, w.err, errOrOK(native.err), testutil.Tail(w.stderr, 15))
	}
	if w.end != native.end {
		t.Errorf("%s: end line %q, native %q (a hang or a death stops the program early)", name, w.end, native.end)
	}
	for i, p := range native.probes {
		wp, ok := w.probes[i]
		if !ok {
			t.Errorf("%s: liveness probe before call %d missing", name, i)
			continue
		}
		if probeField(wp, "allow") != "0" || probeField(wp, "udp") != "5/1" || probeField(wp, "deny") != m.denyErrno {
			t.Errorf("%s: liveness probe before call %d: %q, want allow=0 deny=%s udp=5/1 (native: %q)", name, i, wp, m.denyErrno, p)
		}
	}
	var diffs []diff
	missing := 0
	for _, i := range native.order {
		nl := native.lines[i]
		wl, ok := w.lines[i]
		if !ok {
			missing++
			continue
		}
		nd, no := split(nl)
		wd, wo := split(wl)
		if nd != wd {
			// The description is the program's own choice: a difference
			// here means generation is not deterministic.
			t.Errorf("%s call %d: the program generated different calls:\n  native:  %s\n  wrapped: %s", name, i, nd, wd)
			continue
		}
		if no != wo {
			diffs = append(diffs, diff{mode: m.name, seed: s, index: i, desc: nd, native: no, wrapped: wo})
		}
	}
	if missing > 0 {
		t.Errorf("%s: %d calls have no wrapped line (the program died or hung)", name, missing)
	}
	return diffs
}

func probeField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// supervisorCrash returns the start of a Go panic or fatal error in
// connvisor's stderr, "" when there is none.
func supervisorCrash(stderr string) string {
	for _, marker := range []string{"panic: ", "fatal error: "} {
		if i := strings.Index(stderr, marker); i >= 0 {
			return testutil.Tail(stderr[i:min(len(stderr), i+3000)], 12)
		}
	}
	return ""
}

func firstENOSYS(w *run) int {
	for _, i := range w.order {
		if _, o := split(w.lines[i]); strings.Contains(o, "ENOSYS") {
			return i
		}
	}
	return -1
}

// report classifies the differences, logs a table of classes, and fails
// on the ones no list explains.
func report(t *testing.T, total int, diffs []diff) {
	t.Helper()
	type class struct {
		name, reason string
		known        bool
		count        int
		example      diff
	}
	classes := map[string]*class{}
	var unexplained []diff
	for _, d := range diffs {
		if strings.Contains(d.wrapped, "ENOSYS") && !strings.Contains(d.native, "ENOSYS") {
			continue // a crash, already reported
		}
		e, known := classify(d)
		if e == nil {
			unexplained = append(unexplained, d)
			continue
		}
		c := classes[e.name]
		if c == nil {
			c = &class{name: e.name, reason: e.reason, known: known, example: d}
			classes[e.name] = c
		}
		c.count++
	}
	names := make([]string, 0, len(classes))
	for n := range classes {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls per mode, %d differences, %d unexplained\n", total, len(diffs), len(unexplained))
	strict := os.Getenv("DIFFFUZZ_STRICT") != ""
	for _, n := range names {
		c := classes[n]
		kind := "inherent"
		if c.known {
			kind = "known (issue 11)"
		}
		fmt.Fprintf(&b, "  %-34s %6d  %s: %s\n      e.g. %s %s\n      call:    %s\n      native:  %s\n      wrapped: %s\n",
			c.name, c.count, kind, c.reason, c.example.mode, c.example.repro(), c.example.desc, c.example.native, c.example.wrapped)
		if c.known && strict {
			t.Errorf("known difference %s still seen %d times (DIFFFUZZ_STRICT)", c.name, c.count)
		}
	}
	t.Log(b.String())
	if path := os.Getenv("DIFFFUZZ_DUMP"); path != "" {
		dump(t, path, diffs)
	}
	if len(unexplained) > 0 {
		t.Errorf("%d differences from native that no list explains; by signature:\n%s", len(unexplained), groups(unexplained))
	}
}

// dump writes every difference, one JSON object a line, for study.
func dump(t *testing.T, path string, diffs []diff) {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, d := range diffs {
		e, known := classify(d)
		class := ""
		if e != nil {
			class = e.name
		}
		enc.Encode(map[string]any{"mode": d.mode, "seed": d.seed.seed, "nobody": d.seed.nobody, "index": d.index,
			"repro": d.repro(), "desc": d.desc, "native": d.native, "wrapped": d.wrapped, "class": class, "known": known})
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Errorf("DIFFFUZZ_DUMP: %v", err)
	}
}

// groups summarises differences by call, socket, native and wrapped errno,
// with one example each, largest first.
func groups(ds []diff) string {
	type g struct {
		key   string
		n     int
		first diff
	}
	m := map[string]*g{}
	for _, d := range ds {
		k := signature(d)
		if m[k] == nil {
			m[k] = &g{key: k, first: d}
		}
		m[k].n++
	}
	var gs []*g
	for _, x := range m {
		gs = append(gs, x)
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].n != gs[j].n {
			return gs[i].n > gs[j].n
		}
		return gs[i].key < gs[j].key
	})
	var b strings.Builder
	for i, x := range gs {
		if i == 60 {
			fmt.Fprintf(&b, "  ... %d more signatures\n", len(gs)-i)
			break
		}
		fmt.Fprintf(&b, "  %5d  %s\n         %s: %s\n         call:    %s\n         native:  %s\n         wrapped: %s\n",
			x.n, x.key, x.first.mode, x.first.repro(), x.first.desc, x.first.native, x.first.wrapped)
	}
	return b.String()
}

func signature(d diff) string {
	f := strings.Fields(d.desc)
	call, sock := "", ""
	if len(f) > 3 {
		call, sock = f[1], f[3]
	}
	return fmt.Sprintf("%s %s %s: %s -> %s", d.mode, call, sock, result(d.native), result(d.wrapped))
}

// result is the return value and errno of an outcome, the first two fields.
func result(o string) string {
	f := strings.Fields(o)
	if len(f) < 2 {
		return o
	}
	r := f[0]
	if r != "-1" && r != "0" {
		r = "n"
	}
	return r + " " + f[1]
}

func errOrOK(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}
