// Package conformance is connvisor's differential connect(2) suite: the case
// program cases.c performs each connect(2) behaviour and prints what it
// observed; the suite runs it natively and under `connvisor run` with an
// allow-all policy and requires the same output, case by case.
//
//	go test ./test/conformance -run Native         # the case program alone, against its expectations
//	go test ./test/conformance -run Differential   # native versus wrapped
//	go test ./test/conformance -run Differential -args -conformance.cases=tcp4_blocking_signal_eintr
//
// Both tests run the program built twice, dynamically and with -static (when
// this gcc can link statically), since a static binary is what a container
// image or a Go program looks like to the supervisor.
package conformance

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	flagCases     = flag.String("conformance.cases", "", "comma-separated case names to run (default: all)")
	flagConnvisor = flag.String("conformance.connvisor", "", "use this connvisor binary instead of building one")
	flagRuns      = flag.Int("conformance.runs", 1, "run the wrapped program this many times (flakes show up as differing runs)")
	flagStatic    = flag.Bool("conformance.static", true, "also test the -static build of the case program")
)

// A wrapMode is one way the differential run wraps the program. Under an
// allow-all policy connvisor lets the kernel run every call (no decision
// depends on its arguments) and must be invisible. With one deny rule that
// no case touches, every connect is decided and performed by connvisor on
// a duplicate of the socket: the emulation, which must be invisible too,
// except for what knownDifferences lists.
type wrapMode struct {
	name string
	args []string
}

var wrapModes = []wrapMode{
	{"allow-all", []string{"run", "--default", "allow", "-q", "--"}},
	// Raw and packet sockets are refused at creation unless the policy
	// allows everything or --allow-raw says so (they name no port a rule
	// could match); here they are let in, to compare their connects.
	{"emulated", []string{"run", "--default", "allow", "--deny", "192.0.2.123:9=EACCES", "--allow-raw", "-q", "--"}},
}

// knownDifferences are the cases the emulation cannot make identical, with
// the reason; they are reported as skipped, with both outputs.
var knownDifferences = map[string]string{
	"unix_stream_peercred_names_the_connecting_process": "the kernel records the pid of the process that calls connect, and connvisor connects for the program: " +
		"SO_PEERCRED's pid is the supervisor's (uid and gid are the program's); allow-all policies and --mode continue keep it",
	"unix_stream_as_nobody_succeeds_peer_sees_nobody": "as unix_stream_peercred_names_the_connecting_process: SO_PEERCRED's pid is the supervisor's",
	"send_stream_epipe_handler": "SIGPIPE is raised before the answer, so the handler runs before the program sees the result, as natively; " +
		"the signal interrupts the trapped wait, and without SA_RESTART the call fails with EINTR (its retry gets EPIPE)",
	"send_blocking_interrupted_no_restart": "a signal without SA_RESTART that interrupts a send held for room reaches the program while it waits " +
		"for connvisor's answer, so the call returns EINTR where natively it returns what it had sent; the program's retry of the same " +
		"call gets that count (as a restart with SA_RESTART does)",
	"unix_stream_path_hidden_by_mount_namespace_enoent": "the tree is confined in a Landlock domain (so that it cannot ptrace processes outside it), " +
		"and a Landlock domain refuses mount; allow-all policies and --allow-ptrace make no domain",
	"unix_stream_path_only_in_private_mount_succeeds": "as unix_stream_path_hidden_by_mount_namespace_enoent: mount is refused in the tree's Landlock domain",
}

// A variant is one build of the case program.
type variant struct {
	name string // "dynamic" or "static"
	bin  string
	err  error // why this variant could not be built
}

var (
	bins      *testutil.Bins
	buildOnce sync.Once
	variants  []variant
)

// buildCases compiles cases.c once per test binary. A missing gcc is the
// only reason to skip; a failing dynamic build is a test failure.
func buildCases(t *testing.T) []variant {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: the case program is C; install gcc to run the conformance suite")
	}
	buildOnce.Do(func() {
		for _, v := range []struct {
			name  string
			extra []string
		}{{"dynamic", nil}, {"static", []string{"-static"}}} {
			if v.name == "static" && !*flagStatic {
				continue
			}
			bin, err := bins.CC(gcc, "cases-"+v.name, append(append([]string{"-O2", "-Wall", "-pthread"}, v.extra...), "cases.c")...)
			variants = append(variants, variant{name: v.name, bin: bin, err: err})
		}
	})
	if variants[0].err != nil {
		t.Fatalf("build the case program: %v", variants[0].err)
	}
	return variants
}

func TestMain(m *testing.M) {
	flag.Parse()
	testutil.Main(testutil.Build{Name: "conformance", Connvisor: *flagConnvisor}, func(b *testutil.Bins) int { bins = b; return m.Run() })
}

// caseNames lists the cases the program has (cases -l), filtered by
// -conformance.cases.
func caseNames(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "-l").Output()
	if err != nil {
		t.Fatalf("%s -l: %v", bin, err)
	}
	all := strings.Fields(string(out))
	if *flagCases == "" {
		return all
	}
	have := map[string]bool{}
	for _, n := range all {
		have[n] = true
	}
	var names []string
	for _, n := range strings.Split(*flagCases, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !have[n] {
			t.Fatalf("-conformance.cases: no case named %q (%s -l lists them)", n, bin)
		}
		names = append(names, n)
	}
	return names
}

// run runs the case program (wrapped in prefix, if any) on the given cases
// and returns each case's observation line, keyed by case name. The
// program's exit status is not used: it is 1 whenever a case mismatches its
// expectation, and a missing line is reported per case instead.
func run(t *testing.T, prefix []string, bin string, names []string) (map[string]string, string) {
	t.Helper()
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	argv := append(append(append([]string{}, prefix...), bin), names...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s: %v in %v", strings.Join(argv[:len(argv)-len(names)], " "), errOrOK(err), time.Since(start).Round(time.Millisecond))
	got := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "CASE ")
		if !ok {
			continue
		}
		name, obs, ok := strings.Cut(rest, ": ")
		if ok {
			got[name] = obs
		}
	}
	return got, stderr.String()
}

func errOrOK(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// verdict splits a case's line into its observations and the program's own
// verdict ("ok", "MISMATCH ...", "SKIP ...", "TIMEOUT", "CRASH ...").
func verdict(obs string) (observed, v string) {
	if strings.HasPrefix(obs, "SKIP ") {
		return "", obs
	}
	if o, v, ok := strings.Cut(obs, " | "); ok {
		return o, v
	}
	return obs, "no verdict (TIMEOUT or CRASH)"
}

// TestNative runs the case program without connvisor and requires every case
// to produce the observations its expectation (taken from connect(2) and the
// kernel source) names. It checks the case program itself, and is what to run
// while writing cases.
func TestNative(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connect(2) conformance is Linux-only")
	}
	for _, v := range buildCases(t) {
		t.Run(v.name, func(t *testing.T) {
			if v.err != nil {
				t.Skipf("cannot build this variant: %v", v.err)
			}
			names := caseNames(t, v.bin)
			got, stderr := run(t, nil, v.bin, names)
			for _, name := range names {
				t.Run(name, func(t *testing.T) {
					obs, ok := got[name]
					switch {
					case !ok:
						t.Fatalf("no output for this case (the runner died?); stderr:\n%s", testutil.Tail(stderr, 20))
					case strings.HasPrefix(obs, "SKIP "):
						t.Skip(obs)
					case !strings.HasSuffix(obs, " | ok"):
						t.Errorf("native run does not match the expectation:\n  %s", obs)
					}
				})
			}
		})
	}
}

// TestDifferential runs the case program natively and under connvisor with an
// allow-all policy, and requires every case to observe exactly the same
// thing. The native run is repeated once when the two differ, so that a case
// whose native result varies is reported as flaky rather than blamed on
// connvisor.
func TestDifferential(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connect(2) conformance is Linux-only")
	}
	vs := buildCases(t)
	connvisor := bins.Connvisor
	for _, v := range vs {
		for _, mode := range wrapModes {
			t.Run(v.name+"/"+mode.name, func(t *testing.T) {
				differential(t, v, connvisor, mode)
			})
		}
	}
}

func differential(t *testing.T, v variant, connvisor string, mode wrapMode) {
	{
		{
			if v.err != nil {
				t.Skipf("cannot build this variant: %v", v.err)
			}
			names := caseNames(t, v.bin)
			native, nerr := run(t, nil, v.bin, names)
			var wrapped []map[string]string
			var werr []string
			for i := 0; i < *flagRuns; i++ {
				w, e := run(t, append([]string{connvisor}, mode.args...), v.bin, names)
				wrapped, werr = append(wrapped, w), append(werr, e)
			}
			var renative map[string]string // filled on the first difference
			var differing []string
			for _, name := range names {
				ok := t.Run(name, func(t *testing.T) {
					n, haveN := native[name]
					if !haveN {
						t.Fatalf("no native output for this case; stderr:\n%s", testutil.Tail(nerr, 20))
					}
					for i, w := range wrapped {
						obs, haveW := w[name]
						if !haveW {
							t.Fatalf("run %d: no wrapped output for this case; connvisor stderr:\n%s", i+1, testutil.Tail(werr[i], 20))
						}
						if obs == n {
							continue
						}
						if renative == nil {
							renative, _ = run(t, nil, v.bin, names)
						}
						if renative[name] != n {
							t.Errorf("native output is not stable, so the comparison proves nothing:\n  native:   %s\n  native 2: %s\n  wrapped:  %s", n, renative[name], obs)
							continue
						}
						if why, known := knownDifferences[name]; known && mode.name == "emulated" {
							t.Skipf("known difference (%s):\n  native:  %s\n  wrapped: %s", why, n, obs)
						}
						t.Errorf("wrapped run %d differs from native:\n  native:  %s\n  wrapped: %s", i+1, n, obs)
					}
					if strings.HasPrefix(n, "SKIP ") {
						t.Skip(n)
					}
				})
				if !ok {
					differing = append(differing, name)
				}
			}
			if len(differing) > 0 {
				sort.Strings(differing)
				t.Errorf("%d of %d cases differ under connvisor: %s\nconnvisor stderr (last lines):\n%s",
					len(differing), len(names), strings.Join(differing, ", "), testutil.Tail(werr[0], 15))
			}
		}
	}
}

// TestReadmeListsEveryCase keeps README.md's case list in step with cases.c.
func TestReadmeListsEveryCase(t *testing.T) {
	src, err := os.ReadFile("cases.c")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`(?m)^CASE\((\w+),`).FindAllSubmatch(src, -1)
	if len(names) < 80 {
		t.Errorf("cases.c has %d cases; the suite promises at least 80", len(names))
	}
	for _, m := range names {
		if !bytes.Contains(readme, []byte("| `"+string(m[1])+"` |")) {
			t.Errorf("README.md does not list case %s", m[1])
		}
	}
}
