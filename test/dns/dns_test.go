// Package dns tests host-name rules that follow the names the wrapped
// program itself resolved: a real DNS server (miekg/dns) on a loopback
// address, the program pointed at it by its own resolv.conf (a private
// mount namespace bind-mounts one over /etc/resolv.conf), real listeners
// on the addresses the answers give.
package dns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/connvisor/connvisor/internal/testutil"
)

const server = "127.0.0.99" // the test's DNS server, on port 53

var bins *testutil.Bins

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("skip: the DNS tests need root (packet capture, mount namespaces, port 53)")
		os.Exit(0)
	}
	// User nobody runs the binaries too.
	build := testutil.Build{Name: "dns", Programs: []string{"test/targets/goconnector"}, Shared: true}
	testutil.Main(build, func(b *testutil.Bins) int {
		bins = b
		// musl's resolver, static: sendto on an unconnected socket.
		if _, err := exec.LookPath("musl-gcc"); err == nil {
			if _, err := b.CC("musl-gcc", "cresolve-musl", "-static", "-O2", "cresolve/cresolve.c"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		// c-ares (Debian's libc-ares-dev): its own resolver.
		if _, err := os.Stat("/usr/include/ares.h"); err == nil {
			if _, err := b.CC("gcc", "cares", "-O2", "cresolve/cares.c", "-lcares"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	})
}

// zone is the test server's data: rot.test rotates over 8 addresses with
// TTL 1 s (one address an answer), alias.test is a CNAME chain to
// good.test, evil.test answers with good.test's address, big.test is
// truncated over UDP (the resolver retries over TCP).
type zone struct {
	n       atomic.Uint64
	queries atomic.Uint64
}

func rotAddr(i uint64) string { return fmt.Sprintf("127.1.0.%d", i%8+1) }

func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	z.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	rr := func(s string) {
		x, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		m.Answer = append(m.Answer, x)
	}
	name := strings.ToLower(q.Name)
	switch {
	case name == "rot.test." && q.Qtype == dns.TypeA:
		rr("rot.test. 1 IN A " + rotAddr(z.n.Add(1)))
	case name == "good.test." && q.Qtype == dns.TypeA:
		rr("good.test. 1 IN A 127.2.0.1")
	case name == "alias.test." && q.Qtype == dns.TypeA:
		rr("alias.test. 1 IN CNAME mid.test.")
		rr("mid.test. 1 IN CNAME good.test.")
		rr("good.test. 1 IN A 127.2.0.1")
	case name == "evil.test." && q.Qtype == dns.TypeA:
		rr("evil.test. 1 IN A 127.2.0.1")
	case name == "six.test." && q.Qtype == dns.TypeAAAA:
		rr("six.test. 1 IN AAAA ::1")
	case name == "big.test." && q.Qtype == dns.TypeA:
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncated = true
			break
		}
		rr("big.test. 1 IN A 127.3.0.1")
	}
	w.WriteMsg(m)
}

type env struct {
	zone    *zone
	resolv  string
	policy  string
	servers []*dns.Server
}

func setup(t *testing.T, policy string) *env { return setupAt(t, server, policy) }

// setupAt is setup with the DNS server at addr (an IPv4 or IPv6 address).
func setupAt(t *testing.T, addr, policy string) *env {
	t.Helper()
	e := &env{zone: &zone{}}
	hostport := net.JoinHostPort(addr, "53")
	ruleAddr := addr
	if strings.Contains(addr, ":") {
		ruleAddr = "[" + addr + "]"
	}
	for _, netw := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: hostport, Net: netw, Handler: e.zone}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				started <- err
			}
		}()
		if err := <-started; err != nil {
			t.Fatalf("DNS server %s: %v", netw, err)
		}
		e.servers = append(e.servers, srv)
	}
	addrs := []string{"127.2.0.1:8080", "127.3.0.1:8080", "[::1]:8080"}
	for i := uint64(0); i < 8; i++ {
		addrs = append(addrs, rotAddr(i)+":8080")
	}
	for _, a := range addrs {
		testutil.ListenAt(t, "tcp", a, "")
	}
	dir := t.TempDir()
	e.resolv = filepath.Join(dir, "resolv.conf")
	os.WriteFile(e.resolv, []byte("nameserver "+addr+"\noptions attempts:2 timeout:2\n"), 0o644)
	e.policy = filepath.Join(dir, "test.policy")
	os.WriteFile(e.policy, []byte("default deny errno=EACCES\nallow any "+ruleAddr+" port 53\nresolve never\n"+policy), 0o644)
	t.Cleanup(func() {
		for _, s := range e.servers {
			s.Shutdown()
		}
	})
	return e
}

// run runs argv with e's resolv.conf over /etc/resolv.conf, natively or
// under connvisor (extra: its flags).
func (e *env) run(t *testing.T, wrapped bool, argv ...string) testutil.Result {
	t.Helper()
	inner := `mount --bind "$0" /etc/resolv.conf && exec "$@"`
	args := []string{"-m", "sh", "-c", inner, e.resolv}
	if wrapped {
		argv = bins.WrapArgv([]string{"--log-format", "json", "--summary", "--policy", e.policy}, argv...)
	}
	return testutil.Run(t, append(append([]string{"unshare"}, args...), argv...)...)
}

// dialer is test/targets/goconnector: its repeat mode dials HOST:PORT COUNT
// times, INTERVAL apart, through the resolver each time.
func dialer() string { return bins.Path("goconnector") }

func TestRotatingAddresses(t *testing.T) {
	e := setup(t, "allow tcp rot.test allow-private port 8080\n")
	for _, wrapped := range []bool{false, true} {
		r := e.run(t, wrapped, "env", "GODEBUG=netdns=go", dialer(), "repeat", "rot.test", "8080", "200", "50ms")
		if !strings.HasPrefix(r.Stdout, "ok 200 fail 0") {
			t.Errorf("wrapped=%v: %s\n%s", wrapped, r.Stdout, testutil.Tail(r.Stderr, 12))
		}
		if wrapped && !strings.Contains(r.Stderr, `"host":"rot.test","host_via":"dns"`) {
			t.Errorf("no decision names the host learned from DNS:\n%s", testutil.Tail(r.Stderr, 12))
		}
		if wrapped && !strings.Contains(r.Stderr, "tcp rot.test:8080") {
			t.Errorf("the summary does not group by host:\n%s", testutil.Tail(r.Stderr, 12))
		}
	}
	if q := e.zone.queries.Load(); q < 400 {
		t.Errorf("%d queries: the dialer should resolve every time", q)
	}
}

func TestCNAMEAndNotListed(t *testing.T) {
	e := setup(t, "allow tcp good.test allow-private port 8080\n")
	for _, c := range []struct {
		host string
		want string
	}{
		{"alias.test", "ok 3 fail 0"},
		{"evil.test", "ok 0 fail 3"},
	} {
		native := e.run(t, false, "env", "GODEBUG=netdns=go", dialer(), "repeat", c.host, "8080", "3", "10ms")
		if !strings.HasPrefix(native.Stdout, "ok 3 fail 0") {
			t.Fatalf("%s natively: %s %s", c.host, native.Stdout, native.Stderr)
		}
		r := e.run(t, true, "env", "GODEBUG=netdns=go", dialer(), "repeat", c.host, "8080", "3", "10ms")
		if !strings.HasPrefix(r.Stdout, c.want) {
			t.Errorf("%s wrapped: %s, want %s\n%s", c.host, r.Stdout, c.want, testutil.Tail(r.Stderr, 12))
		}
		if c.host == "alias.test" && !strings.Contains(r.Stderr, `"host":"good.test","host_via":"dns"`) {
			t.Errorf("alias.test: the rule's name good.test was not learned through the CNAME chain:\n%s", testutil.Tail(r.Stderr, 12))
		}
	}
	// An address rule still allows the address, whatever name it has.
	e2 := setup2(t, e, "allow tcp good.test allow-private port 8080\nallow tcp 127.2.0.1 port 8080\n")
	if r := e2.run(t, true, "env", "GODEBUG=netdns=go", dialer(), "repeat", "evil.test", "8080", "3", "10ms"); !strings.HasPrefix(r.Stdout, "ok 3 fail 0") {
		t.Errorf("evil.test with an address rule: %s\n%s", r.Stdout, testutil.Tail(r.Stderr, 12))
	}
}

// setup2 is e with another policy.
func setup2(t *testing.T, e *env, policy string) *env {
	e2 := *e
	e2.policy = filepath.Join(t.TempDir(), "p2.policy")
	os.WriteFile(e2.policy, []byte("default deny errno=EACCES\nallow any "+server+" port 53\nresolve never\n"+policy), 0o644)
	return &e2
}

// A name resolved by a process outside the tree opens nothing inside it.
func TestResolvedOutsideTree(t *testing.T) {
	e := setup(t, "allow tcp good.test allow-private port 8080\nallow tcp evil.test allow-private port 9\n")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		// Outside the tree: resolve good.test over and over.
		defer wg.Done()
		c := new(dns.Client)
		m := new(dns.Msg)
		m.SetQuestion("good.test.", dns.TypeA)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.Exchange(m, server+":53")
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// Inside: connect to good.test's address by number, having resolved
	// only evil.test (which answers the same address, but its rule is for
	// another port).
	r := e.run(t, true, "sh", "-c", "getent hosts evil.test >/dev/null; exec "+dialer()+" repeat 127.2.0.1 8080 3 10ms")
	close(stop)
	wg.Wait()
	if !strings.HasPrefix(r.Stdout, "ok 0 fail 3") {
		t.Errorf("a name resolved outside the tree opened a connect: %s\n%s", r.Stdout, testutil.Tail(r.Stderr, 12))
	}
	// getent asked nscd first: refused as if it were not running.
	refused := false
	for _, l := range strings.Split(r.Stderr, "\n") {
		refused = refused || strings.Contains(l, "nscd/socket") && strings.Contains(l, `"errno":"ENOENT"`)
	}
	if !refused {
		t.Errorf("nscd's socket was not refused with ENOENT:\n%s", testutil.Tail(r.Stderr, 12))
	}
}

func TestResolvers(t *testing.T) {
	e := setup(t, "allow tcp good.test allow-private port 8080\nallow tcp six.test allow-private port 8080\nallow tcp big.test allow-private port 8080\n")
	py := `import socket,sys
h=sys.argv[1]; fam=socket.AF_INET6 if h=="six.test" else socket.AF_INET
ai=socket.getaddrinfo(h,8080,fam,socket.SOCK_STREAM)
s=socket.socket(fam,socket.SOCK_STREAM); s.connect(ai[0][4]); print("connected")`
	cases := []struct {
		name string
		argv []string
		want string
	}{
		// Each must be allowed through a name learned from the program's
		// own answer ("host_via":"dns"), not through the addresses
		// connvisor resolved at load (which would allow it too).
		{"go pure", []string{"env", "GODEBUG=netdns=go", dialer(), "repeat", "good.test", "8080", "2", "10ms"}, "ok 2 fail 0"},
		{"go cgo", []string{"env", "GODEBUG=netdns=cgo", dialer(), "repeat", "good.test", "8080", "2", "10ms"}, "ok 2 fail 0"},
		{"go AAAA", []string{"env", "GODEBUG=netdns=go", dialer(), "repeat", "six.test", "8080", "2", "10ms"}, "ok 2 fail 0"},
		{"go TCP after truncation", []string{"env", "GODEBUG=netdns=go", dialer(), "repeat", "big.test", "8080", "2", "10ms"}, "ok 2 fail 0"},
		{"glibc TCP after truncation", []string{"python3", "-c", py, "big.test"}, "connected"},
		{"curl", []string{"curl", "-sS", "-o", "/dev/null", "-w", "connected", "--max-time", "5", "http://good.test:8080/"}, "connected"},
		{"python", []string{"python3", "-c", py, "good.test"}, "connected"},
		{"python AAAA", []string{"python3", "-c", py, "six.test"}, "connected"},
		{"musl static", []string{bins.Path("cresolve-musl"), "good.test", "8080"}, "connected"},
		{"musl static AAAA", []string{bins.Path("cresolve-musl"), "six.test", "8080"}, "connected"},
		{"c-ares", []string{bins.Path("cares"), "good.test", "8080"}, "connected"},
	}
	for _, c := range cases {
		if _, err := exec.LookPath(c.argv[0]); err != nil {
			t.Logf("skip %s: %v (musl-gcc is in Debian's musl-tools, c-ares in libc-ares-dev)", c.name, err)
			continue
		}
		if n := e.run(t, false, c.argv...); !strings.Contains(n.Stdout, c.want) {
			t.Errorf("%s natively: %q %s", c.name, n.Stdout, testutil.Tail(n.Stderr, 12))
		}
		start := time.Now()
		r := e.run(t, true, c.argv...)
		t.Logf("%s: %v", c.name, time.Since(start).Round(time.Millisecond))
		// curl gets no HTTP answer (the listener closes): only the connect matters.
		if !strings.Contains(r.Stdout, c.want) {
			t.Errorf("%s: %s\n%s", c.name, r.Stdout, testutil.Tail(r.Stderr, 12))
		}
		if !learnedAllow(r.Stderr, 8080) {
			t.Errorf("%s: no connect to port 8080 allowed by a learned name:\n%s", c.name, testutil.Tail(r.Stderr, 12))
		}
	}
}

// learnedAllow reports whether the JSON decision log has a connect to port
// allowed through a host learned from the tree's DNS answers.
func learnedAllow(log string, port int) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"decision":"allow"`) && strings.Contains(l, `"host_via":"dns"`) && strings.Contains(l, fmt.Sprintf(`"port":%d`, port)) {
			return true
		}
	}
	return false
}

// Without CAP_NET_RAW connvisor cannot capture answers: it warns at start,
// and names match the addresses it resolved at load.
func TestUnprivilegedFallback(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) missing")
	}
	e := setup(t, "allow tcp good.test allow-private port 8080\n")
	os.Chmod(filepath.Dir(filepath.Dir(e.policy)), 0o755)
	os.Chmod(filepath.Dir(e.policy), 0o755)
	os.Chmod(e.policy, 0o644)
	r := e.run(t, false, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		bins.Connvisor, "run", "--log-format", "json", "--policy", e.policy, "--",
		"env", "GODEBUG=netdns=go", dialer(), "repeat", "good.test", "8080", "2", "10ms")
	if !strings.HasPrefix(r.Stdout, "ok 2 fail 0") {
		t.Errorf("unprivileged: %s\n%s", r.Stdout, testutil.Tail(r.Stderr, 12))
	}
	if !strings.Contains(r.Stderr, "needs CAP_NET_RAW") || !strings.Contains(r.Stderr, `"host":"good.test","host_via":"load"`) {
		t.Errorf("no start-up warning, or the decision does not say the name matched at load:\n%s", testutil.Tail(r.Stderr, 12))
	}
}

// A resolver reached over IPv6, UDP and TCP (the capture's IPv6 path).
func TestIPv6Server(t *testing.T) {
	e := setupAt(t, "::1", "allow tcp good.test allow-private port 8080\nallow tcp big.test allow-private port 8080\n")
	for _, c := range [][]string{
		{"env", "GODEBUG=netdns=go", dialer(), "repeat", "good.test", "8080", "2", "10ms"},
		{"env", "GODEBUG=netdns=go", dialer(), "repeat", "big.test", "8080", "2", "10ms"},
		{bins.Path("cresolve-musl"), "good.test", "8080"},
	} {
		if _, err := os.Stat(c[0]); c[0] != "env" && err != nil {
			t.Logf("skip %s: %v", c[0], err)
			continue
		}
		r := e.run(t, true, c...)
		if !learnedAllow(r.Stderr, 8080) || strings.Contains(r.Stdout, "fail 1") || strings.Contains(r.Stdout, "fail 2") {
			t.Errorf("%q over IPv6: %s\n%s", c, r.Stdout, testutil.Tail(r.Stderr, 12))
		}
	}
}

// TestCost prints what learning names costs per connect (the dialer times
// each resolve+connect inside the target). Figures, not assertions: set
// CONNVISOR_DNS_COST=1 to run it.
func TestCost(t *testing.T) {
	if os.Getenv("CONNVISOR_DNS_COST") == "" {
		t.Skip("set CONNVISOR_DNS_COST=1 to measure")
	}
	perDial := func(r testutil.Result) string {
		for _, l := range strings.Split(r.Stderr, "\n") {
			if strings.HasPrefix(l, "per-dial ") {
				return strings.TrimPrefix(l, "per-dial ")
			}
		}
		return "? " + testutil.Tail(r.Stderr, 12)
	}
	byNumber := []string{"env", "GODEBUG=netdns=go", dialer(), "repeat", "127.2.0.1", "8080", "500", "1ms"}
	byName := []string{"env", "GODEBUG=netdns=go", dialer(), "repeat", "good.test", "8080", "500", "1ms"}
	plain := setup(t, "allow tcp 127.2.0.1 port 8080\n")
	named := setup2(t, plain, "allow tcp good.test allow-private port 8080\nallow tcp 127.2.0.1 port 8080\n")
	for round := 0; round < 3; round++ {
		t.Logf("round %d: by number: native %s, wrapped without name rules %s, with name rules %s; by name (a DNS answer each): native %s, without name rules %s, with name rules %s",
			round,
			perDial(plain.run(t, false, byNumber...)), perDial(plain.run(t, true, byNumber...)), perDial(named.run(t, true, byNumber...)),
			perDial(plain.run(t, false, byName...)), perDial(setup2(t, plain, "allow tcp 127.2.0.1 port 8080\n").run(t, true, byName...)), perDial(named.run(t, true, byName...)))
	}
}
