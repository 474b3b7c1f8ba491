package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestUnixRelativePath: a relative UNIX path resolves in the target's
// working directory, not connvisor's.
func TestUnixRelativePath(t *testing.T) {
	prog := connector(t)
	s := newServer(t, "unix")
	dir := filepath.Dir(s.where)
	script := fmt.Sprintf("cd %s && exec %s unix s.sock", dir, prog)
	native := run(t, "sh", "-c", script)
	r := wrapped(t, []string{"-q"}, "sh", "-c", script)
	for i, res := range []result{native, r} {
		if got := res.results("unix", "s.sock"); !slices.Equal(got, []string{"ok"}) {
			t.Errorf("%s: results %q, want [ok]\n%v", []string{"native", "wrapped"}[i], got, res)
		}
	}
	if n := s.reached(); n != 2 {
		t.Errorf("server reached %d times, want 2 (native and wrapped)", n)
	}
}

// TestUnixPermissions: connvisor runs as root here; a target running as
// nobody must not reach a socket that nobody cannot reach natively (the
// supervisor's connect must not lend it root's rights).
func TestUnixPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the target as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	prog := publicCopy(t, connector(t))
	s := newServer(t, "unix") // in a 0700 directory of root's
	asNobody := []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--", prog, "unix", s.where}
	native := run(t, asNobody[0], asNobody[1:]...)
	if got := native.results("unix", s.where); !slices.Equal(got, []string{"EACCES"}) {
		t.Fatalf("native as nobody: %q, want [EACCES]\n%v", got, native)
	}
	r := wrapped(t, []string{"-q"}, asNobody...)
	if got := r.results("unix", s.where); !slices.Equal(got, []string{"EACCES"}) {
		t.Errorf("wrapped as nobody: %q, want [EACCES] as natively\n%v", got, r)
	}
	if n := s.reached(); n != 0 {
		t.Errorf("server reached %d times by nobody", n)
	}
}

// TestUnixPeerCred: the server's SO_PEERCRED names the program's uid and
// gid. Its pid is the supervisor's when connvisor connects for the program
// (the kernel records the calling process, and no interface sets it
// otherwise: a documented difference); with --mode continue the program
// connects itself and the pid is its own.
func TestUnixPeerCred(t *testing.T) {
	prog := connector(t)
	for _, kind := range []string{"unix", "unix@"} {
		for _, mode := range []string{"emulate", "continue"} {
			t.Run(kind+"/"+mode, func(t *testing.T) {
				s := newServer(t, kind)
				r := wrapped(t, []string{"-q", "--mode", mode}, append([]string{prog}, s.spec()...)...)
				cs := r.connects()
				if len(cs) != 1 || cs[0].result != "ok" {
					t.Fatalf("connect failed\n%v", r)
				}
				line := fmt.Sprintf("ping pid=%d tid=%d", cs[0].pid, cs[0].tid)
				cred, ok := s.peerCreds()[line]
				if !ok {
					t.Fatalf("server has no credentials for %q: %v", line, s.peerCreds())
				}
				if int(cred.Uid) != os.Geteuid() || int(cred.Gid) != os.Getegid() {
					t.Errorf("SO_PEERCRED uid %d gid %d, want the target's %d/%d", cred.Uid, cred.Gid, os.Geteuid(), os.Getegid())
				}
				if mode == "continue" && int(cred.Pid) != cs[0].pid {
					t.Errorf("--mode continue: SO_PEERCRED pid %d, want the target's %d", cred.Pid, cs[0].pid)
				}
			})
		}
	}
}

// TestUnixPeerCredOtherUser: a target running as nobody must appear to the
// server as nobody: a root daemon that trusts uid 0 peers must not trust it.
func TestUnixPeerCredOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the target as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	prog := publicCopy(t, connector(t))
	for _, kind := range []string{"unix", "unix@"} {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			if kind == "unix" {
				// Let nobody reach it natively.
				os.Chmod(filepath.Dir(s.where), 0o755)
				os.Chmod(s.where, 0o777)
			}
			r := wrapped(t, []string{"-q"}, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--", prog, s.kind, s.where)
			cs := r.connects()
			if len(cs) != 1 || cs[0].result != "ok" {
				t.Fatalf("connect as nobody failed\n%v", r)
			}
			cred, ok := s.peerCreds()[fmt.Sprintf("ping pid=%d tid=%d", cs[0].pid, cs[0].tid)]
			if !ok {
				t.Fatalf("server has no credentials: %v", s.peerCreds())
			}
			if cred.Uid != 65534 || cred.Gid != 65534 {
				t.Errorf("SO_PEERCRED uid %d gid %d, want nobody's 65534/65534", cred.Uid, cred.Gid)
			}
		})
	}
}

// publicCopy copies prog where every user may run it (the built binaries
// live in a 0700 temporary directory).
func publicCopy(t *testing.T, prog string) string {
	t.Helper()
	pub, err := os.MkdirTemp("", "cvpub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(pub, filepath.Base(prog))
	if err := os.WriteFile(out, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}
