package testutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvDir names the directory that holds the copied binaries in a re-run
// test binary (see RerunUnprivileged); it is unset otherwise.
const EnvDir = "CONNVISOR_UNPRIVILEGED_DIR"

// Unprivileged reports whether this process is a test binary re-run by
// RerunUnprivileged.
func Unprivileged() bool { return os.Getenv(EnvDir) != "" }

// RerunUnprivileged runs this test binary again as user nobody with no
// capabilities (setpriv), the way a test author who is not root runs the
// suite, and fails t if the re-run fails. The binary and the files in
// extra are copied into a fresh directory that nobody can read and
// execute (0755; a test's own temporary directories are 0700); EnvDir
// names it in the re-run. run selects the tests (-test.run). It skips when
// this process is not root (there is nobody to become: the suite already
// runs unprivileged) or setpriv is missing.
func RerunUnprivileged(t *testing.T, run string, extra ...string) {
	t.Helper()
	if Unprivileged() {
		t.Skip("already the unprivileged re-run")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: the suite itself runs unprivileged")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is missing: cannot become nobody")
	}
	dir, err := os.MkdirTemp("", "connvisor-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(self))
	for _, f := range append([]string{self}, extra...) {
		if err := copyExecutable(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
		"--", bin, "-test.run", run, "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), EnvDir+"="+dir, "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	// Keep what the re-run skipped visible: a skip there hides a gap here.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "--- SKIP") || strings.Contains(l, "--- PASS") && !strings.Contains(l, "    ---") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("copy for nobody: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copy for nobody: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s for nobody: %w", from, err)
	}
	return out.Close()
}
