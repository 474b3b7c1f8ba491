package control

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

func TestMain(m *testing.M) {
	os.Exit(supervisor.Main(m, supervisor.Roles{"dialer": dialer}))
}

// dialer is the wrapped program: THREADS goroutines connect to ADDR and
// close, in a loop, until the file STOP exists; then it prints how many
// connects ended how ("ok 120", "ECONNREFUSED 7").
func dialer(args []string) int {
	addr, stop := args[0], args[2]
	threads, _ := strconv.Atoi(args[1])
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := os.Stat(stop); err == nil {
					return
				}
				c, err := net.Dial("tcp", addr)
				res := "ok"
				if err != nil {
					res = err.Error()
					var errno syscall.Errno
					if e, ok := err.(*net.OpError); ok {
						if se, ok := e.Err.(*os.SyscallError); ok {
							if errno, ok = se.Err.(syscall.Errno); ok {
								res = strconv.Itoa(int(errno))
							}
						}
					}
				} else {
					c.Close()
				}
				mu.Lock()
				counts[res]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for k, v := range counts {
		fmt.Printf("%s %d\n", k, v)
	}
	return 0
}

// holder is a Target without a supervisor, for the API's own checks.
type holder struct{ p atomic.Pointer[policy.Policy] }

func (h *holder) Policy() *policy.Policy     { return h.p.Load() }
func (h *holder) SetPolicy(p *policy.Policy) { h.p.Store(p) }

func load(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(nil, "test.policy", policy.Options{ReadFile: func(string) ([]byte, error) { return []byte(text), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serve starts a server for target on a fresh socket and returns a client.
func serve(t *testing.T, target Target, cfg Config) (*Server, *Client) {
	t.Helper()
	s := New(target, cfg)
	path := filepath.Join(t.TempDir(), "control.sock")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := NewClient(path)
	t.Cleanup(c.CloseIdle)
	return s, c
}

func call(t *testing.T, c *Client, method, path, ctype, body string) (int, string) {
	t.Helper()
	code, out, err := c.Do(method, path, ctype, []byte(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, string(out)
}

func policyText(t *testing.T, c *Client) string {
	t.Helper()
	code, out := call(t, c, "GET", "/v1/policy?format=text", "", "")
	if code != 200 {
		t.Fatalf("GET /v1/policy: %d %s", code, out)
	}
	return out
}

// TestBadInput: every malformed request gets a clear 4xx and leaves the
// policy exactly as it was.
func TestBadInput(t *testing.T) {
	h := &holder{}
	h.SetPolicy(load(t, "default deny\nallow tcp 127.0.0.1 port 80\nfail tcp 127.0.0.1 port 81 errno=ECONNREFUSED when=1..2"))
	_, c := serve(t, h, Config{AllowSameProcess: true})
	before := policyText(t, c)
	big := strings.Repeat("# padding\n", maxPolicyBody/10+1)
	rows := []struct {
		method, path, ctype, body string
		code                      int
		want                      string
	}{
		{"PUT", "/v1/policy", "text/plain", "allow tcp 127.0.0.1\nfail 10.0.0.1=ECONREFUSED", 400, `policy:2:15: unknown errno \"ECONREFUSED\" (did you mean ECONNREFUSED?)`},
		{"PUT", "/v1/policy", "text/plain", "include other.policy", 400, "include is not available"},
		{"PUT", "/v1/policy", "application/json", `{"text": "allow any"}`, 415, "takes text/plain"},
		{"PUT", "/v1/policy", "text/plain", big, 413, "body larger than"},
		{"POST", "/v1/rules", "application/json", `{"rule": "fail 10.0.0.1=EIO"`, 400, "malformed JSON"},
		{"POST", "/v1/rules", "application/json", `{"rule": "allow any", "position": 1}`, 400, `unknown field \"position\"`},
		{"POST", "/v1/rules", "application/json", `{"rule": "allow any"} {"rule": "deny any"}`, 400, "data after the object"},
		{"POST", "/v1/rules", "application/json", `{"rule": "allow any", "after": -1}`, 400, "malformed JSON"},
		{"POST", "/v1/rules", "application/json", `{"rule": "fail 10.0.0.1 for=10s"}`, 400, "api:1:1: fail needs errno=NAME or blackhole"},
		{"POST", "/v1/rules", "application/json", `{"rule": "allow 10.0.0.1 for=10s"}`, 400, "api:1:16: for does not apply to allow"},
		{"POST", "/v1/rules", "application/json", `{"rule": "default allow"}`, 400, "default is a policy line, not a rule"},
		{"POST", "/v1/rules", "application/json", `{"rule": "allow any\ndefault allow"}`, 400, "a rule is one line"},
		{"POST", "/v1/rules", "application/json", `{"rule": ""}`, 400, `missing \"rule\"`},
		{"POST", "/v1/rules", "application/json", `{"rule": "allow any", "after": 99}`, 404, "insert after rule 99: no rule with this id"},
		{"POST", "/v1/rules", "text/plain", `allow any`, 415, "expected application/json"},
		{"POST", "/v1/rules", "application/json", `{"rule": "` + strings.Repeat("a", maxRuleBody) + `"}`, 413, "body larger than"},
		{"DELETE", "/v1/rules/99", "", "", 404, "remove rule 99: no rule with this id"},
		{"DELETE", "/v1/rules/x", "", "", 400, "expected a number"},
		{"GET", "/v1/decisions?since=-1", "", "", 400, "since="},
		{"GET", "/v1/decisions?limit=0", "", "", 400, "limit="},
		{"GET", "/v1/nothing", "", "", 404, "no such endpoint"},
		{"DELETE", "/v1/policy", "", "", 405, "method not allowed (allowed: GET, PUT)"},
	}
	for _, r := range rows {
		code, out := call(t, c, r.method, r.path, r.ctype, r.body)
		if code != r.code || !strings.Contains(out, r.want) {
			t.Errorf("%s %s %.40q: %d %.200s, want %d with %q", r.method, r.path, r.body, code, out, r.code, r.want)
		}
		if after := policyText(t, c); after != before {
			t.Fatalf("%s %s changed the policy:\n%s\nwas\n%s", r.method, r.path, after, before)
		}
	}
}

// TestSocketAndGuard: the socket is 0600 and this user's; whatever
// policy is sent, the policy in force refuses the socket's path (and a
// symlink's target is what is decided), and the API does not show that
// rule, nor let it be removed.
func TestSocketAndGuard(t *testing.T) {
	h := &holder{}
	h.SetPolicy(load(t, "default allow"))
	s, c := serve(t, h, Config{AllowSameProcess: true})
	st, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Mode().Type() != os.ModeSocket || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
		t.Fatalf("socket mode %v uid %d, want a socket 0600 of uid %d", st.Mode(), st.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
	}
	sockDest := &policy.Dest{Family: syscall.AF_UNIX, Path: s.Path()}
	seenIDs := map[uint64]string{}
	for _, text := range []string{"default allow", "allow unix\ndefault allow", "allow unix " + s.Path() + "\nallow any"} {
		if code, out := call(t, c, "PUT", "/v1/policy", "text/plain", text); code != 200 {
			t.Fatalf("PUT %q: %d %s", text, code, out)
		}
		if code, out := call(t, c, "POST", "/v1/rules", "application/json", `{"rule": "allow unix /**"}`); code != 201 {
			t.Fatalf("POST: %d %s", code, out)
		}
		d := h.Policy().Decide(sockDest)
		if d.Action != policy.Deny || d.Errno != syscall.EACCES {
			t.Errorf("policy %q: a connect to the control socket gets %v %v, want deny EACCES", text, d.Action, d.Errno)
		}
		// ids are never reused, across PUTs too
		var info PolicyInfo
		_, body := call(t, c, "GET", "/v1/policy", "", "")
		json.Unmarshal([]byte(body), &info)
		for _, r := range info.Rules {
			if was, ok := seenIDs[r.ID]; ok && was != r.Origin+" "+r.Rule {
				t.Errorf("id %d names %q, and named %q before", r.ID, r.Origin+" "+r.Rule, was)
			}
			seenIDs[r.ID] = r.Origin + " " + r.Rule
		}
		if strings.Contains(policyText(t, c), guardOrigin) {
			t.Errorf("the API shows the guard rule:\n%s", policyText(t, c))
		}
		guard := h.Policy().Rules()[0]
		if code, _ := call(t, c, "DELETE", fmt.Sprintf("/v1/rules/%d", guard.ID()), "", ""); code != 404 {
			t.Errorf("DELETE of the guard rule: %d, want 404", code)
		}
	}
	// A second server cannot take a socket in use; a file that is not a
	// socket is never removed.
	if err := New(h, Config{}).Listen(s.Path()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Listen on a live socket: %v", err)
	}
	// A socket left by a killed connvisor (nobody listens) is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	s2 := New(h, Config{AllowSameProcess: true})
	if err := s2.Listen(stale); err != nil {
		t.Errorf("Listen on a stale socket: %v", err)
	}
	s2.Close()
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("the socket outlives Close: %v", err)
	}
	if err := New(&holder{}, Config{}).Listen(filepath.Join(t.TempDir(), "x.sock")); err == nil {
		t.Error("Listen for a target without a policy")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o600)
	if err := New(h, Config{}).Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a file: %v", err)
	}
}

// TestSameProcessRefused: without AllowSameProcess a connection from this
// process (which is what a wrapped program's emulated connect looks like)
// is closed at accept.
func TestSameProcessRefused(t *testing.T) {
	h := &holder{}
	h.SetPolicy(load(t, "default allow"))
	_, c := serve(t, h, Config{})
	if code, out, err := c.Do("GET", "/v1/policy", "", nil); err == nil {
		t.Fatalf("a connection from connvisor's own process was served: %d %s", code, out)
	}
}

// metricSum adds the values of a metric's series in a Prometheus text.
func metricSum(text, name string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// TestConcurrentAPIWhileConnecting drives the API from several clients at
// once (policy swaps, rules added and removed, stats, decisions, resets)
// while a wrapped program connects from 8 threads; run with -race. No
// request may fail other than as expected, and every decision is counted
// once in the metrics and once in the decision log.
func TestConcurrentAPIWhileConnecting(t *testing.T) {
	ln := testutil.Listen(t)
	port := ln.Port
	stop := filepath.Join(t.TempDir(), "stop")
	cmd := supervisor.SelfCommand(load(t, "default deny\nallow unix\nallow 127.0.0.1"), "dialer", ln.Addr, "8", stop)
	var out strings.Builder
	cmd.Stdout = &out
	s, c := serve(t, cmd, Config{AllowSameProcess: true, DecisionLog: 1 << 20, HeldCalls: func() int {
		if sup := cmd.Supervisor(); sup != nil {
			return sup.HeldCalls()
		}
		return 0
	}})
	cmd.OnDecision = s.Observe
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	policies := []string{
		"default deny\nallow unix\nallow 127.0.0.1",
		fmt.Sprintf("default deny\nallow unix\nfail tcp 127.0.0.1 port %d errno=ECONNREFUSED every=20ms for=10ms\nallow 127.0.0.1", port),
	}
	var wg sync.WaitGroup
	var bad atomic.Int32
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				check := func(code int, ok ...int) {
					for _, o := range ok {
						if code == o {
							return
						}
					}
					bad.Add(1)
					t.Errorf("worker %d step %d: HTTP %d, want %v", w, i, code, ok)
				}
				code, _, err := c.Do("PUT", "/v1/policy", "text/plain", []byte(policies[(w+i)%2]))
				if err != nil {
					t.Error(err)
					return
				}
				check(code, 200)
				code, body, _ := c.Do("POST", "/v1/rules", "application/json",
					[]byte(fmt.Sprintf(`{"rule": "fail tcp 127.0.0.1 port %d errno=ECONNRESET when=1+3 for=50ms"}`, port)))
				check(code, 201)
				var r RuleInfo
				json.Unmarshal(body, &r)
				code, _, _ = c.Do("DELETE", fmt.Sprintf("/v1/rules/%d", r.ID), "", nil)
				check(code, 200, 404) // 404: another worker's PUT replaced it first
				code, _, _ = c.Do("GET", "/v1/stats", "", nil)
				check(code, 200)
				code, _, _ = c.Do("GET", "/v1/decisions?since=0&limit=100", "", nil)
				check(code, 200)
				if i%5 == 0 {
					code, _, _ = c.Do("POST", "/v1/reset", "", nil)
					check(code, 200)
				}
				code, _, _ = c.Do("GET", "/metrics", "", nil)
				check(code, 200)
			}
		}()
	}
	wg.Wait()
	os.WriteFile(stop, nil, 0o600)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dialer: %v\n%s", err, out.String())
	}
	if bad.Load() > 0 {
		return
	}
	_, metrics := call(t, c, "GET", "/metrics", "", "")
	total := metricSum(metrics, "connvisor_decisions_total")
	last := s.ring.last()
	if total == 0 || uint64(total) != last {
		t.Fatalf("metrics count %v decisions, the decision log %d", total, last)
	}
	var decided int
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(l)
		n, _ := strconv.Atoi(f[len(f)-1])
		decided += n
	}
	// Every connect the program made was decided (and a few more calls:
	// the runtime's own, none here in practice).
	if uint64(decided) > last {
		t.Errorf("the program made %d connects, the log has %d decisions", decided, last)
	}
	t.Logf("%d decisions under %d concurrent API calls; program saw: %s", last, 4*25*7, strings.ReplaceAll(out.String(), "\n", ", "))
}

// TestReloadKeepsGuard: a policy reloaded by the holder (SIGUSR2) goes
// through SetPolicy, which keeps the tree off the socket and numbers the
// new rules after every id given; CompareAndSwap refuses a stale base.
func TestReloadKeepsGuard(t *testing.T) {
	h := &holder{}
	h.SetPolicy(load(t, "default allow"))
	s, c := serve(t, h, Config{AllowSameProcess: true})
	var added RuleInfo
	_, body := call(t, c, "POST", "/v1/rules", "application/json", `{"rule": "allow any"}`)
	json.Unmarshal([]byte(body), &added)
	if err := s.SetPolicy(load(t, "allow unix\ndefault allow")); err != nil {
		t.Fatal(err)
	}
	rules := h.Policy().Rules()
	if !isGuard(rules[0]) || len(rules) != 2 || rules[1].ID() <= added.ID {
		t.Fatalf("after reload: %v (added id %d)", rules, added.ID)
	}
	if d := h.Policy().Decide(&policy.Dest{Family: syscall.AF_UNIX, Path: s.Path()}); d.Action != policy.Deny {
		t.Fatalf("after reload the socket gets %v", d.Action)
	}
	old := h.Policy()
	call(t, c, "POST", "/v1/rules", "application/json", `{"rule": "allow any"}`)
	if s.CompareAndSwap(old, old) {
		t.Fatal("CompareAndSwap accepted a policy derived from a stale one")
	}
}
