package containers

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/testutil"
)

// eachRuntime runs f as a subtest on every runtime.
func eachRuntime(t *testing.T, f func(t *testing.T, rt *runtimeUnderTest)) {
	for _, name := range runtimes {
		t.Run(name, func(t *testing.T) { f(t, newRuntime(t, name)) })
	}
}

const (
	msgRefused    = "Permission denied"        // EACCES, the policies' denial
	msgNoSupport  = "Function not implemented" // ENOSYS: no agent answers
	msgConnRefuse = "Connection refused"
)

// TestAllowDeny: a connect the policy allows reaches the host's server; one
// it denies fails with the policy's errno and never arrives; both are
// logged with the container's id and the CRI names.
func TestAllowDeny(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		dir := t.TempDir()
		ok, no := newServer(t), newServer(t)
		writePolicy(t, dir, "web.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", ok.Port))
		a := startAgent(t, dir, "--policy-dir", dir)
		c := newContainer(t, rt, dial(ok.Port)+"; "+dial(no.Port)+"; echo | nc 192.0.2.1 80 2>&1; true",
			map[string]string{
				"io.kubernetes.cri.sandbox-name": "shop-0", "io.kubernetes.cri.sandbox-namespace": "prod",
				"io.kubernetes.cri.container-name": "web",
			},
			"--listener", a.socket, "--metadata", "web")
		out, err := c.run(t)
		if err != nil {
			t.Fatalf("container: %v\n%s", err, out)
		}
		if !strings.Contains(out, "hi") {
			t.Errorf("the allowed connect did not reach the server:\n%s", out)
		}
		if strings.Count(out, msgRefused) != 2 {
			t.Errorf("want two connects refused with EACCES, got:\n%s", out)
		}
		if ok.Accepted() != 1 || no.Accepted() != 0 {
			t.Errorf("servers accepted %d (allowed) and %d (denied), want 1 and 0", ok.Accepted(), no.Accepted())
		}
		ds := a.decisions(t, c.id)
		if len(ds) != 3 {
			t.Fatalf("want 3 decisions logged for %s, got %d: %v", c.id, len(ds), ds)
		}
		for i, want := range []string{"allow", "deny", "deny"} {
			e := ds[i]
			if e.str("decision") != want || e.str("pod") != "shop-0" || e.str("namespace") != "prod" || e.str("container_name") != "web" {
				t.Errorf("decision %d: %v, want %s with pod shop-0, namespace prod, container_name web", i, e, want)
			}
		}
		if ds[1].str("errno") != "EACCES" || ds[1].str("dest") != fmt.Sprintf("tcp 127.0.0.1:%d", no.Port) {
			t.Errorf("the denial logged %v", ds[1])
		}
	})
}

// TestFaultSchedule: `when=` counts the container's connects: the first two
// are refused as if nothing listened, the third goes through.
func TestFaultSchedule(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		dir := t.TempDir()
		s := newServer(t)
		writePolicy(t, dir, "flaky.policy", fmt.Sprintf("fail tcp 127.0.0.1 port %d errno=ECONNREFUSED when=1..2\nallow any\n", s.Port))
		a := startAgent(t, dir, "--policy-dir", dir)
		c := newContainer(t, rt, strings.Repeat(dial(s.Port)+"; ", 3)+"true", nil, "--listener", a.socket, "--metadata", "flaky")
		out, err := c.run(t)
		if err != nil {
			t.Fatalf("container: %v\n%s", err, out)
		}
		if strings.Count(out, msgConnRefuse) != 2 || strings.Count(out, "hi") != 1 {
			t.Errorf("want 2 refusals then a greeting, got:\n%s", out)
		}
		if s.Accepted() != 1 {
			t.Errorf("the server accepted %d connections, want 1 (the faults never reach it)", s.Accepted())
		}
	})
}

// TestExec: an exec into a running container is its own hand-off (crun's
// names pid 0) and gets the container's policy.
func TestExec(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		dir := t.TempDir()
		ok, no := newServer(t), newServer(t)
		writePolicy(t, dir, "p.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", ok.Port))
		a := startAgent(t, dir, "--policy-dir", dir)
		c := newContainer(t, rt, "touch /shared/up; while [ ! -e /shared/stop ]; do sleep 0.05; done", nil,
			"--listener", a.socket, "--metadata", "p")
		c.start(t)
		c.waitFile(t, "up")
		out, err := rt.cmd("exec", c.id, "sh", "-c", dial(ok.Port)+"; "+dial(no.Port)+"; true").CombinedOutput()
		if err != nil {
			t.Fatalf("%s exec: %v\n%s", rt.name, err, out)
		}
		if !strings.Contains(string(out), "hi") || !strings.Contains(string(out), msgRefused) {
			t.Errorf("exec: want the greeting and a refusal, got:\n%s", out)
		}
		c.touch(t, "stop")
		if out, err := c.wait(t, containerTimeout); err != nil {
			t.Fatalf("container: %v\n%s", err, out)
		}
		handoffs := 0
		for _, e := range a.events(t) {
			if e.msg() == "supervising" && e.str("container") == c.id {
				handoffs++
			}
		}
		if handoffs != 2 {
			t.Errorf("want 2 hand-offs (init and exec) for %s, got %d", c.id, handoffs)
		}
		if ok.Accepted() != 1 || no.Accepted() != 0 {
			t.Errorf("servers accepted %d and %d, want 1 and 0", ok.Accepted(), no.Accepted())
		}
	})
}

// TestNoPolicy: a container that names no policy, under an agent without
// --policy, is refused: its connects fail with ENOSYS and the agent says
// why. The annotation picks a policy when the profile names none.
func TestNoPolicy(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		dir := t.TempDir()
		s := newServer(t)
		writePolicy(t, dir, "ann.policy", "allow any\n")
		a := startAgent(t, dir, "--policy-dir", dir)
		c := newContainer(t, rt, dial(s.Port)+"; true", nil, "--listener", a.socket)
		out, err := c.run(t)
		if err != nil {
			t.Fatalf("container: %v\n%s", err, out)
		}
		if !strings.Contains(out, msgNoSupport) {
			t.Errorf("want ENOSYS, got:\n%s", out)
		}
		if s.Accepted() != 0 {
			t.Errorf("the server accepted a connection of a refused container")
		}
		e := a.waitLog(t, func(e logEvent) bool {
			return e.str("container") == c.id && strings.HasPrefix(e.msg(), "listener refused")
		})
		if !strings.Contains(e.str("error"), "no policy") {
			t.Errorf("refusal logged as %v", e)
		}
		// The same profile with the annotation: supervised.
		c2 := newContainer(t, rt, dial(s.Port)+"; true", map[string]string{"org.connvisor.policy": "ann"}, "--listener", a.socket)
		out, err = c2.run(t)
		if err != nil || !strings.Contains(out, "hi") {
			t.Errorf("annotated container: %v\n%s", err, out)
		}
	})
}

// TestTwoContainers: two containers at once, each under its own policy.
func TestTwoContainers(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		dir := t.TempDir()
		s1, s2 := newServer(t), newServer(t)
		writePolicy(t, dir, "one.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", s1.Port))
		writePolicy(t, dir, "two.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", s2.Port))
		a := startAgent(t, dir, "--policy-dir", dir)
		// Each waits for the other to be up, so both are supervised at once.
		script := func(me, other string) string {
			return fmt.Sprintf("touch /shared/%s; while [ ! -e /shared/go ]; do sleep 0.05; done; %s; %s; true", me, dial(s1.Port), dial(s2.Port))
		}
		c1 := newContainer(t, rt, script("up", ""), nil, "--listener", a.socket, "--metadata", "one")
		c2 := newContainer(t, rt, script("up", ""), nil, "--listener", a.socket, "--metadata", "two")
		c1.start(t)
		c2.start(t)
		c1.waitFile(t, "up")
		c2.waitFile(t, "up")
		c1.touch(t, "go")
		c2.touch(t, "go")
		var wg sync.WaitGroup
		outs := make([]string, 2)
		for i, c := range []*container{c1, c2} {
			wg.Add(1)
			go func() { defer wg.Done(); outs[i], _ = c.wait(t, containerTimeout) }()
		}
		wg.Wait()
		for i, out := range outs {
			if strings.Count(out, "hi") != 1 || strings.Count(out, msgRefused) != 1 {
				t.Errorf("container %d: want one greeting and one refusal, got:\n%s", i+1, out)
			}
		}
		for i, c := range []*container{c1, c2} {
			ds := a.decisions(t, c.id)
			if len(ds) != 2 {
				t.Fatalf("container %d: %d decisions: %v", i+1, len(ds), ds)
			}
			allowed := 0
			if ds[1].str("decision") == "allow" {
				allowed = 1
			}
			if ds[allowed].str("decision") != "allow" || ds[1-allowed].str("decision") != "deny" || allowed != i {
				t.Errorf("container %d decided %v and %v: want its own server allowed only", i+1, ds[0], ds[1])
			}
		}
		// SIGUSR1: one table per container, each with its own counts.
		sum := a.summary(t, c1.id, c2.id)
		for i, c := range []*container{c1, c2} {
			_, table, _ := strings.Cut(sum, "container "+c.id)
			own := []int{s1.Port, s2.Port}[i]
			if !strings.Contains(table, fmt.Sprintf("tcp 127.0.0.1:%d     1        1       0", own)) {
				t.Errorf("the summary of container %d does not count its allowed connect:\n%s", i+1, sum)
			}
		}
	})
}

// phased is a container that connects to ok and no each time the test
// touches /shared/goN, writes what it saw to /shared/outN, then touches
// /shared/doneN.
func phased(t *testing.T, rt *runtimeUnderTest, a *agentProc, ok, no *testutil.Listener, phases int, profileArgs ...string) *container {
	var b strings.Builder
	for i := 1; i <= phases; i++ {
		fmt.Fprintf(&b, "while [ ! -e /shared/go%d ]; do sleep 0.05; done; (%s; %s) > /shared/out%d; touch /shared/done%d; ", i, dial(ok.Port), dial(no.Port), i, i)
	}
	b.WriteString("true")
	return newContainer(t, rt, b.String(), nil, append([]string{"--listener", a.socket}, profileArgs...)...)
}

func (c *container) phase(t *testing.T, i int) string {
	t.Helper()
	c.touch(t, fmt.Sprintf("go%d", i))
	c.waitFile(t, fmt.Sprintf("done%d", i))
	return c.file(t, fmt.Sprintf("out%d", i))
}

// TestUpgrade: a new agent takes over while a container runs; the
// container's connects keep their policy, decided by the new agent.
func TestUpgrade(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		dir := t.TempDir()
		ok, no := newServer(t), newServer(t)
		writePolicy(t, dir, "p.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", ok.Port))
		old := startAgent(t, dir, "--policy-dir", dir)
		c := phased(t, rt, old, ok, no, 2, "--metadata", "p")
		c.start(t)
		if out := c.phase(t, 1); !strings.Contains(out, "hi") || !strings.Contains(out, msgRefused) {
			t.Fatalf("before the upgrade: %s", out)
		}
		next := old.launch(t, "--policy-dir", dir, "--upgrade")
		select {
		case <-old.done:
		case <-time.After(containerTimeout):
			t.Fatal("the old agent did not exit after the upgrade")
		}
		if old.err != nil {
			t.Errorf("old agent: %v", old.err)
		}
		if out := c.phase(t, 2); !strings.Contains(out, "hi") || !strings.Contains(out, msgRefused) {
			t.Errorf("after the upgrade: want the greeting and a refusal, got:\n%s", out)
		}
		if out, err := c.wait(t, containerTimeout); err != nil {
			t.Fatalf("container: %v\n%s", err, out)
		}
		if n := len(next.decisions(t, c.id)); n != 2 {
			t.Errorf("the new agent logged %d decisions for %s, want 2", n, c.id)
		}
		// The counters came along: both phases are in the new summary.
		sum := next.summary(t, c.id)
		if !strings.Contains(sum, fmt.Sprintf("tcp 127.0.0.1:%d     2        2       0", ok.Port)) ||
			!strings.Contains(sum, fmt.Sprintf("tcp 127.0.0.1:%d     2        0       2", no.Port)) {
			t.Errorf("the new agent's summary lacks the counts from before the upgrade:\n%s", sum)
		}
		if ok.Accepted() != 2 || no.Accepted() != 0 {
			t.Errorf("servers accepted %d and %d, want 2 and 0", ok.Accepted(), no.Accepted())
		}
		// The new agent took the socket too: a new container is supervised.
		c2 := newContainer(t, rt, dial(ok.Port)+"; true", nil, "--listener", next.socket, "--metadata", "p")
		if out, err := c2.run(t); err != nil || !strings.Contains(out, "hi") {
			t.Errorf("a container after the upgrade: %v\n%s", err, out)
		}
	})
}

// TestAgentKilled: with the agent gone, the container's trapped calls fail
// with ENOSYS and it goes on running.
func TestAgentKilled(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		dir := t.TempDir()
		ok, no := newServer(t), newServer(t)
		writePolicy(t, dir, "p.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", ok.Port))
		a := startAgent(t, dir, "--policy-dir", dir)
		c := phased(t, rt, a, ok, no, 2, "--metadata", "p")
		c.start(t)
		if out := c.phase(t, 1); !strings.Contains(out, "hi") {
			t.Fatalf("before the kill: %s", out)
		}
		a.cmd.Process.Kill()
		<-a.done
		if out := c.phase(t, 2); strings.Count(out, msgNoSupport) != 2 {
			t.Errorf("after the kill: want ENOSYS twice, got:\n%s", out)
		}
		if out, err := c.wait(t, containerTimeout); err != nil {
			t.Errorf("the container did not go on: %v\n%s", err, out)
		}
		if ok.Accepted() != 1 || no.Accepted() != 0 {
			t.Errorf("servers accepted %d and %d, want 1 and 0", ok.Accepted(), no.Accepted())
		}
	})
}

// TestBadHandoffs: malformed hand-offs are logged and closed, and the
// agent goes on supervising.
func TestBadHandoffs(t *testing.T) {
	rt := newRuntime(t, "runc")
	dir := t.TempDir()
	s := newServer(t)
	writePolicy(t, dir, "p.policy", "allow any\n")
	a := startAgent(t, dir, "--policy-dir", dir, "--policy", filepath.Join(dir, "p.policy"))
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeR.Close()
	defer pipeW.Close()
	state := `{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":1,"state":{"id":"bad","status":"creating","bundle":"/"}}`
	cases := []struct {
		name, data string
		fds        []int
		want       string
	}{
		{"malformed JSON", `{"ociVersion": 5, "fds": "seccompFd"}`, []int{int(pipeR.Fd())}, "ContainerProcessState"},
		{"incomplete JSON", `{"ociVersion": [`, []int{int(pipeR.Fd())}, "connection ended"},
		{"no fds", state, nil, "no descriptor"},
		{"too many fds", state, []int{int(pipeR.Fd()), int(pipeW.Fd()), int(pipeR.Fd()), int(pipeW.Fd()), int(pipeR.Fd())}, "descriptors"},
		{"not a listener", state, []int{int(pipeR.Fd())}, "not a seccomp listener"},
		{"nothing sent", "", nil, "no complete message"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("unix", a.socket)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.data != "" {
				var oob []byte
				if len(tc.fds) > 0 {
					oob = unix.UnixRights(tc.fds...)
				}
				if _, _, err := conn.(*net.UnixConn).WriteMsgUnix([]byte(tc.data), oob, nil); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "incomplete JSON" {
				// Incomplete JSON waits for more: end the connection.
				conn.(*net.UnixConn).CloseWrite()
			}
			e := a.waitLog(t, func(e logEvent) bool {
				return e.msg() == "hand-off refused, connection closed" && strings.Contains(e.str("error"), tc.want)
			})
			// The agent closed the connection: a read sees EOF.
			conn.SetReadDeadline(time.Now().Add(containerTimeout))
			if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("the connection stayed open after %v", e)
			}
		})
	}
	c := newContainer(t, rt, dial(s.Port)+"; true", nil, "--listener", a.socket)
	if out, err := c.run(t); err != nil || !strings.Contains(out, "hi") {
		t.Errorf("a container after the bad hand-offs: %v\n%s", err, out)
	}
}

// TestUpgradeAbandoned: a successor that takes the first record and goes
// away leaves everything with the old agent, which goes on deciding the
// container's connects and accepting new containers.
func TestUpgradeAbandoned(t *testing.T) {
	rt := newRuntime(t, "runc")
	dir := t.TempDir()
	ok, no := newServer(t), newServer(t)
	writePolicy(t, dir, "p.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", ok.Port))
	a := startAgent(t, dir, "--policy-dir", dir)
	c := phased(t, rt, a, ok, no, 2, "--metadata", "p")
	c.start(t)
	if out := c.phase(t, 1); !strings.Contains(out, "hi") {
		t.Fatalf("before: %s", out)
	}
	conn, err := net.Dial("unixpacket", a.socket+".upgrade")
	if err != nil {
		t.Fatal(err)
	}
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.(*net.UnixConn).ReadMsgUnix(make([]byte, 1<<17), oob)
	if err != nil || n == 0 {
		t.Fatalf("read the first record: %v", err)
	}
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for i := range msgs {
			fds, _ := unix.ParseUnixRights(&msgs[i])
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	conn.Close()
	a.waitLog(t, func(e logEvent) bool { return e.msg() == "upgrade failed, this agent goes on supervising" })
	if out := c.phase(t, 2); !strings.Contains(out, "hi") || !strings.Contains(out, msgRefused) {
		t.Errorf("after the abandoned upgrade: want the greeting and a refusal, got:\n%s", out)
	}
	if n := len(a.decisions(t, c.id)); n != 4 {
		t.Errorf("the agent logged %d decisions for %s, want 4", n, c.id)
	}
	c2 := newContainer(t, rt, dial(ok.Port)+"; true", nil, "--listener", a.socket, "--metadata", "p")
	if out, err := c2.run(t); err != nil || !strings.Contains(out, "hi") {
		t.Errorf("a new container after the abandoned upgrade: %v\n%s", err, out)
	}
}

// TestReload: SIGUSR2 reads a running container's policy file again; its
// next connects are decided by the new rules.
func TestReload(t *testing.T) {
	rt := newRuntime(t, "runc")
	dir := t.TempDir()
	ok, no := newServer(t), newServer(t)
	writePolicy(t, dir, "p.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", ok.Port))
	a := startAgent(t, dir, "--policy-dir", dir)
	c := phased(t, rt, a, ok, no, 2, "--metadata", "p")
	c.start(t)
	if out := c.phase(t, 1); !strings.Contains(out, "hi") || !strings.Contains(out, msgRefused) {
		t.Fatalf("before the reload: %s", out)
	}
	writePolicy(t, dir, "p.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", no.Port))
	a.cmd.Process.Signal(syscall.SIGUSR2)
	a.waitLog(t, func(e logEvent) bool { return e.msg() == "policy reloaded" && e.str("container") == c.id })
	if out := c.phase(t, 2); !strings.Contains(out, "hi") || !strings.Contains(out, msgRefused) {
		t.Errorf("after the reload: want the greeting and a refusal, got:\n%s", out)
	}
	if ok.Accepted() != 1 || no.Accepted() != 1 {
		t.Errorf("servers accepted %d and %d, want 1 and 1 (the rules swapped)", ok.Accepted(), no.Accepted())
	}
}

// TestMergedProfile: a profile merged into a base keeps the base's
// refusals in a real container, and its connects go to the agent.
func TestMergedProfile(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		dir := t.TempDir()
		ok, no := newServer(t), newServer(t)
		writePolicy(t, dir, "p.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", ok.Port))
		base := filepath.Join(dir, "base.json")
		if err := os.WriteFile(base, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
		  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122},
		               {"names": ["connect"], "action": "SCMP_ACT_ALLOW"}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		a := startAgent(t, dir, "--policy-dir", dir)
		c := newContainer(t, rt, "mkdir /tmp/x 2>&1; "+dial(ok.Port)+"; "+dial(no.Port)+"; true", nil,
			"--listener", a.socket, "--metadata", "p", "--base", base)
		out, err := c.run(t)
		if err != nil {
			t.Fatalf("container: %v\n%s", err, out)
		}
		if !strings.Contains(out, "quota exceeded") { // EDQUOT, the base's errno
			t.Errorf("the base's mkdir refusal is gone:\n%s", out)
		}
		if !strings.Contains(out, "hi") || !strings.Contains(out, msgRefused) {
			t.Errorf("want the greeting and a refusal, got:\n%s", out)
		}
		if n := len(a.decisions(t, c.id)); n != 2 {
			t.Errorf("the agent decided %d connects, want 2", n)
		}
	})
}

// TestNonblockingFaultsOwnNetns: in a container with a network namespace
// of its own, faults on nonblocking connects arrive as from a network
// (EINPROGRESS, then SO_ERROR), made in the container's namespace.
func TestNonblockingFaultsOwnNetns(t *testing.T) {
	eachRuntime(t, func(t *testing.T, rt *runtimeUnderTest) {
		connector := staticConnector(t)
		dir := t.TempDir()
		writePolicy(t, dir, "f.policy", "fail tcp 127.0.0.1 port 9 errno=ENETUNREACH\n"+
			"fail tcp 127.0.0.1 port 10 errno=ETIMEDOUT delay=200ms\nfail tcp 127.0.0.1 port 11 errno=ECONNRESET\nallow any\n")
		a := startAgent(t, dir, "--policy-dir", dir)
		c := newContainer(t, rt, "/bin/connector --nonblock tcp4 127.0.0.1:9 tcp4 127.0.0.1:10 tcp4 127.0.0.1:11", nil,
			"--listener", a.socket, "--metadata", "f")
		c.install(t, connector, "/bin/connector")
		c.ownNetworkNamespace(t)
		out, err := c.run(t)
		if err != nil {
			t.Fatalf("container: %v\n%s", err, out)
		}
		for _, want := range []string{"127.0.0.1:9 pid=1 tid=1 leader=yes: ENETUNREACH", "127.0.0.1:10 pid=1 tid=1 leader=yes: ETIMEDOUT", "127.0.0.1:11 pid=1 tid=1 leader=yes: ECONNRESET"} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		}
		for _, e := range a.decisions(t, c.id) {
			if e.str("delivery") != "so_error" || e.str("errno") != "EINPROGRESS" {
				t.Errorf("want EINPROGRESS then SO_ERROR, logged %v", e)
			}
		}
	})
}
