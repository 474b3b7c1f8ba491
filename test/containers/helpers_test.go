package containers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

// runtimeUnderTest runs one OCI runtime with a private state root.
type runtimeUnderTest struct {
	name string
	root string
}

// runtimes are the runtimes every case runs on.
var runtimes = []string{"runc", "crun"}

func newRuntime(t testing.TB, name string) *runtimeUnderTest {
	t.Helper()
	if why := missing[name]; why != "" {
		t.Skip(why)
	}
	if why := missing["busybox"]; why != "" {
		t.Skip(why)
	}
	if err := os.MkdirAll(stateParent, 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp(stateParent, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	rt := &runtimeUnderTest{name: name, root: root}
	t.Cleanup(func() { rt.removeAll(); os.RemoveAll(root) })
	return rt
}

// leftoverAge: a state root older than this is an interrupted run's.
const leftoverAge = 30 * time.Minute

// stateParent holds the runtimes' private state roots, so that a run can
// remove what an interrupted one left (removeLeftovers).
var stateParent = filepath.Join(os.TempDir(), "connvisor-containers-state")

// removeAll kills and deletes every container of the runtime's root.
func (r *runtimeUnderTest) removeAll() {
	out, _ := r.cmd("list", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		r.cmd("kill", id, "KILL").Run()
		r.cmd("delete", "--force", id).Run()
	}
}

// removeLeftovers deletes the containers and state roots of earlier runs
// that did not clean up (killed, timed out). A root younger than the
// suite's own deadline may belong to a run going on beside this one.
func removeLeftovers() {
	entries, _ := os.ReadDir(stateParent)
	for _, e := range entries {
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < leftoverAge {
			continue
		}
		name, _, _ := strings.Cut(e.Name(), "-")
		if _, err := exec.LookPath(name); err == nil {
			(&runtimeUnderTest{name: name, root: filepath.Join(stateParent, e.Name())}).removeAll()
		}
		os.RemoveAll(filepath.Join(stateParent, e.Name()))
	}
}

// cmd is the runtime with args. crun 1.8.1 fails on the mixed cgroup
// v1/v2 mount of some machines, so it runs in a private mount namespace
// without the v2 hierarchy (shared/OCI.md).
func (r *runtimeUnderTest) cmd(args ...string) *exec.Cmd {
	if r.name == "crun" {
		sh := `umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"`
		return exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", sh, "crun", "--root", r.root}, args...)...)
	}
	return exec.Command(r.name, append([]string{"--root", r.root}, args...)...)
}

// container is one container of a test.
type container struct {
	rt     *runtimeUnderTest
	id     string
	bundle string
	shared string // bind-mounted at /shared in the container
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan struct{}
	err    error
}

var containerSeq atomic.Int64

// newContainer makes a bundle whose process runs script (sh -c) under the
// profile `connvisor profile` writes with profileArgs, with annotations.
func newContainer(t testing.TB, rt *runtimeUnderTest, script string, annotations map[string]string, profileArgs ...string) *container {
	t.Helper()
	c := &container{
		rt:     rt,
		id:     fmt.Sprintf("cv-%s-%d-%d", rt.name, os.Getpid(), containerSeq.Add(1)),
		bundle: t.TempDir(),
		done:   make(chan struct{}),
	}
	c.shared = filepath.Join(c.bundle, "shared")
	rootfs := filepath.Join(c.bundle, "rootfs")
	for _, d := range []string{filepath.Join(rootfs, "bin"), filepath.Join(rootfs, "shared"), c.shared, filepath.Join(rootfs, "proc"), filepath.Join(rootfs, "dev"), filepath.Join(rootfs, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	busybox, _ := exec.LookPath("busybox")
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "nc", "sleep", "cat", "echo", "touch", "true", "test", "["} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("runc", "spec", "--bundle", c.bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	var spec map[string]any
	readJSON(t, filepath.Join(c.bundle, "config.json"), &spec)
	var seccomp any
	if profileArgs != nil { // nil: no seccomp profile, no agent
		profile, err := exec.Command(bins.Connvisor, append([]string{"profile"}, profileArgs...)...).Output()
		if err != nil {
			t.Fatalf("connvisor profile: %v", err)
		}
		if err := json.Unmarshal(profile, &seccomp); err != nil {
			t.Fatal(err)
		}
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"sh", "-c", script}
	linux := spec["linux"].(map[string]any)
	if seccomp != nil {
		linux["seccomp"] = seccomp
	}
	// The host's network namespace: the test's servers are on its loopback.
	var nss []any
	for _, ns := range linux["namespaces"].([]any) {
		if ns.(map[string]any)["type"] != "network" {
			nss = append(nss, ns)
		}
	}
	linux["namespaces"] = nss
	spec["mounts"] = append(spec["mounts"].([]any), map[string]any{
		"destination": "/shared", "type": "bind", "source": c.shared, "options": []string{"rbind", "rw"},
	})
	if len(annotations) > 0 {
		spec["annotations"] = annotations
	}
	writeJSON(t, filepath.Join(c.bundle, "config.json"), spec)
	t.Cleanup(func() { c.remove(t) })
	return c
}

// install copies the host file from into the container's rootfs at to.
func (c *container) install(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "rootfs", to), b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// ownNetworkNamespace gives the container a network namespace of its own
// (only lo, up), as the runtimes' default spec does.
func (c *container) ownNetworkNamespace(t testing.TB) {
	t.Helper()
	path := filepath.Join(c.bundle, "config.json")
	var spec map[string]any
	readJSON(t, path, &spec)
	linux := spec["linux"].(map[string]any)
	linux["namespaces"] = append(linux["namespaces"].([]any), map[string]any{"type": "network"})
	writeJSON(t, path, spec)
}

var connectorOnce struct {
	sync.Once
	path, skip string
}

// staticConnector builds test/targets/connector.c statically, once.
func staticConnector(t testing.TB) string {
	t.Helper()
	connectorOnce.Do(func() {
		src := filepath.Join(testutil.RepoRoot(), "test", "targets", "connector.c")
		var err error
		if connectorOnce.path, err = bins.CC("gcc", "connector", "-static", "-O2", "-pthread", src); err != nil {
			connectorOnce.skip = fmt.Sprintf("a static connector cannot be built here (gcc, libc6-dev): %v", err)
		}
	})
	if connectorOnce.skip != "" {
		t.Skip(connectorOnce.skip)
	}
	return connectorOnce.path
}

// start runs the container in the foreground of a background process.
func (c *container) start(t testing.TB) {
	t.Helper()
	c.cmd = c.rt.cmd("run", "--bundle", c.bundle, c.id)
	c.cmd.Stdout, c.cmd.Stderr = &lockedWriter{w: &c.out}, &lockedWriter{w: &c.out}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("%s run: %v", c.rt.name, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
}

// wait waits for the container's process to exit and returns its output.
func (c *container) wait(t testing.TB, d time.Duration) (string, error) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("container %s still running after %v; output:\n%s", c.id, d, c.output())
	}
	return c.output(), c.err
}

// run runs the container to its end.
func (c *container) run(t testing.TB) (string, error) {
	t.Helper()
	c.start(t)
	return c.wait(t, containerTimeout)
}

// containerTimeout bounds one container's run (not a timed assertion: a
// hung container fails the test instead of the suite's deadline).
const containerTimeout = 60 * time.Second

func (c *container) output() string {
	outMu.Lock()
	defer outMu.Unlock()
	return c.out.String()
}

// remove deletes the container and its state (killed first if running).
func (c *container) remove(t testing.TB) {
	c.rt.cmd("kill", c.id, "KILL").Run()
	if c.cmd != nil && c.cmd.Process != nil {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
		}
	}
	if out, err := c.rt.cmd("delete", "--force", c.id).CombinedOutput(); err != nil && !strings.Contains(string(out), "not exist") && !strings.Contains(string(out), "not found") {
		t.Logf("%s delete %s: %v %s", c.rt.name, c.id, err, out)
	}
}

// waitFile waits for the container to create name in /shared.
func (c *container) waitFile(t testing.TB, name string) {
	t.Helper()
	deadline := time.Now().Add(containerTimeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(c.shared, name)); err == nil {
			return
		}
		select {
		case <-c.done:
			if _, err := os.Stat(filepath.Join(c.shared, name)); err == nil {
				return // made just before it exited
			}
			t.Fatalf("container %s exited before making /shared/%s: %v\n%s", c.id, name, c.err, c.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("container %s made no /shared/%s; output:\n%s", c.id, name, c.output())
}

func (c *container) touch(t testing.TB, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.shared, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c *container) file(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.shared, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var outMu sync.Mutex

type lockedWriter struct{ w *bytes.Buffer }

func (l *lockedWriter) Write(p []byte) (int, error) {
	outMu.Lock()
	defer outMu.Unlock()
	return l.w.Write(p)
}

// agentProc is a running `connvisor agent`.
type agentProc struct {
	socket string
	log    string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	stderr *bytes.Buffer // the summaries
}

// startAgent runs `connvisor agent --listen SOCKET` with args, logging
// JSON to a file, and waits until it accepts.
func startAgent(t testing.TB, dir string, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{socket: filepath.Join(dir, "agent.sock")}
	return a.launch(t, args...)
}

func (a *agentProc) launch(t testing.TB, args ...string) *agentProc {
	t.Helper()
	n := &agentProc{socket: a.socket, log: fmt.Sprintf("%s.%d.log", a.socket, containerSeq.Add(1)), done: make(chan struct{})}
	all := append([]string{"agent", "--listen", n.socket, "--log-format", "json", "--log-file", n.log}, args...)
	n.cmd = exec.Command(bins.Connvisor, all...)
	var stderr bytes.Buffer
	n.stderr = &stderr
	n.cmd.Stderr = &lockedWriter{w: &stderr}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
		}
		outMu.Lock()
		raced := strings.Contains(stderr.String(), "DATA RACE")
		outMu.Unlock()
		if raced { // built with GOFLAGS=-race
			t.Errorf("the agent had a data race")
		}
		if t.Failed() {
			b, _ := os.ReadFile(n.log)
			outMu.Lock()
			t.Logf("agent %v log:\n%s\nstderr:\n%s", all, b, stderr.String())
			outMu.Unlock()
		}
	})
	if slices.Contains(args, "-q") {
		// Quiet: no "listening" line. The upgrade socket is made last.
		deadline := time.Now().Add(containerTimeout)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(n.socket + ".upgrade"); err == nil {
				return n
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the agent made no socket")
	}
	n.waitLog(t, func(e logEvent) bool { return e.msg() == "agent listening" })
	return n
}

// summary asks the agent for its summary (SIGUSR1) and returns it once it
// names every one of ids.
func (a *agentProc) summary(t testing.TB, ids ...string) string {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGUSR1)
	deadline := time.Now().Add(containerTimeout)
	for time.Now().Before(deadline) {
		outMu.Lock()
		s := a.stderr.String()
		outMu.Unlock()
		all := true
		for _, id := range ids {
			all = all && strings.Contains(s, "container "+id)
		}
		if all {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the agent's summary does not name %v", ids)
	return ""
}

// logEvent is one line of the agent's JSON log.
type logEvent map[string]any

func (e logEvent) str(k string) string {
	s, _ := e[k].(string)
	return s
}

func (e logEvent) msg() string { return e.str("msg") }

func (e logEvent) String() string { b, _ := json.Marshal(e); return string(b) }

func (a *agentProc) events(t testing.TB) []logEvent {
	t.Helper()
	f, err := os.Open(a.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var evs []logEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e logEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			evs = append(evs, e)
		}
	}
	return evs
}

// waitLog waits until an event matches (a runtime's hand-off and the
// agent's log line are not ordered with the container's own output).
func (a *agentProc) waitLog(t testing.TB, match func(logEvent) bool) logEvent {
	t.Helper()
	deadline := time.Now().Add(containerTimeout)
	for time.Now().Before(deadline) {
		for _, e := range a.events(t) {
			if match(e) {
				return e
			}
		}
		select {
		case <-a.done:
			t.Fatalf("agent exited: %v", a.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no such event in the agent's log")
	return nil
}

// decisions are the agent's decision events for container id.
func (a *agentProc) decisions(t testing.TB, id string) []logEvent {
	var out []logEvent
	for _, e := range a.events(t) {
		if e.str("container") == id && e.str("decision") != "" {
			out = append(out, e)
		}
	}
	return out
}

// newServer is a loopback TCP server that greets ("hi\n") and counts its
// clients.
func newServer(t testing.TB) *testutil.Listener {
	t.Helper()
	return testutil.ListenAt(t, "tcp4", "127.0.0.1:0", "hi\n")
}

// dial is a container command: a connect to 127.0.0.1:port with busybox
// nc, which prints the server's greeting or its error.
func dial(port int) string { return fmt.Sprintf("echo | nc 127.0.0.1 %d 2>&1", port) }

func writePolicy(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
