package containers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connvisor/connvisor/internal/testutil"
)

// TestContainerd: `ctr run --seccomp-profile` with the output of `connvisor
// profile` (the loader containerd's CRI plugin uses for Kubernetes
// Localhost profiles) puts the container under the agent, through runc.
func TestContainerd(t *testing.T) {
	if why := missing["ctr"]; why != "" {
		t.Skip(why)
	}
	rt := newRuntime(t, "runc") // containerd's shim runs runc
	dir := t.TempDir()
	ok, no := newServer(t), newServer(t)
	writePolicy(t, dir, "p.policy", fmt.Sprintf("default deny errno=EACCES\nallow tcp 127.0.0.1 port %d\n", ok.Port))
	a := startAgent(t, dir, "--policy-dir", dir)
	address := startContainerd(t)

	// The bundle's rootfs and profile, run by containerd instead.
	c := newContainer(t, rt, "true", nil, "--listener", a.socket, "--metadata", "p")
	profile, err := exec.Command(bins.Connvisor, "profile", "--listener", a.socket, "--metadata", "p").Output()
	if err != nil {
		t.Fatal(err)
	}
	profilePath := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(profilePath, profile, 0o644); err != nil {
		t.Fatal(err)
	}
	id := c.id + "-ctr"
	ns := "connvisor-test"
	script := dial(ok.Port) + "; " + dial(no.Port) + "; true"
	cmd := exec.Command("ctr", "--address", address, "--namespace", ns, "run", "--rm", "--net-host", "--runc-root", rt.root,
		"--seccomp", "--seccomp-profile", profilePath, "--rootfs", filepath.Join(c.bundle, "rootfs"), id, "/bin/sh", "-c", script)
	t.Cleanup(func() {
		exec.Command("ctr", "--address", address, "--namespace", ns, "task", "kill", "-s", "KILL", id).Run()
		exec.Command("ctr", "--address", address, "--namespace", ns, "container", "delete", id).Run()
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ctr run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "hi") || !strings.Contains(string(out), msgRefused) {
		t.Errorf("want the greeting and a refusal, got:\n%s", out)
	}
	if ok.Accepted() != 1 || no.Accepted() != 0 {
		t.Errorf("servers accepted %d and %d, want 1 and 0", ok.Accepted(), no.Accepted())
	}
	if ds := a.decisions(t, id); len(ds) != 2 {
		t.Errorf("want 2 decisions for %s, got %v", id, ds)
	}
}

// startContainerd runs a containerd of the test's own (private root, state
// and socket; the CRI plugin off) and returns its address. A containerd
// that does not come up skips the test with its log.
func startContainerd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	address := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), address)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "containerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Skipf("containerd does not start here: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command("ctr", "--address", address, "version").Run() == nil {
			return address
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Skipf("containerd exited at start here:\n%s", testutil.Tail(string(b), 5))
		case <-time.After(100 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(logPath)
	t.Skipf("containerd did not answer within 30 s here:\n%s", testutil.Tail(string(b), 5))
	return ""
}
