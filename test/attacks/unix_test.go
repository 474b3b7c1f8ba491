package attacks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnixDeputy: the supervisor (root) performs AF_UNIX pathname connects
// for the target. It must never reach a socket that the target could not
// reach itself: through its privileges, its working directory, or its root.
func TestUnixDeputy(t *testing.T) {
	needAttack(t)
	base := shortTempDir(t)

	t.Run("private-dir-as-nobody", func(t *testing.T) {
		// A socket in a 0700 root directory: nobody gets EACCES natively.
		priv := mkdir(t, filepath.Join(base, "priv"), 0o700)
		srv := newServer(t, "unix", filepath.Join(priv, "s"))
		if r := run(t, nil, "unix", srv.Path); !r.reached() || srv.Hits() != 1 {
			t.Fatalf("natively root should reach the socket (control):\n%s", r.out)
		}
		nat := run(t, nil, "unix", srv.Path, "uid=65534")
		if nat.reached() || !strings.HasPrefix(nat.detail, "EACCES") {
			t.Fatalf("natively nobody should get EACCES:\n%s", nat.out)
		}
		wr := run(t, []string{"--allow", "any"}, "unix", srv.Path, "uid=65534")
		if wr.reached() || srv.Hits() != 1 {
			t.Fatalf("OPEN DOOR: the supervisor connected a nobody target to a socket in a root-only directory: %s", wr.out)
		}
		if !strings.HasPrefix(wr.detail, "EACCES") {
			t.Errorf("wrapped nobody got %s %s, natively EACCES", wr.verdict, wr.detail)
		}
	})

	t.Run("relative-path-after-chdir", func(t *testing.T) {
		// The target's cwd holds the socket it means; the supervisor's cwd
		// holds another one of the same name, which must never be hit.
		mine := mkdir(t, filepath.Join(base, "mine"), 0o755)
		theirs := mkdir(t, filepath.Join(base, "theirs"), 0o755)
		right := newServer(t, "unix", filepath.Join(mine, "s"))
		wrong := newServer(t, "unix", filepath.Join(theirs, "s"))
		if r := run(t, nil, "unix", "s", "chdir="+mine); !r.reached() || right.Hits() != 1 {
			t.Fatalf("natively the relative connect should reach its own cwd's socket:\n%s", r.out)
		}
		t.Chdir(theirs) // connvisor's cwd
		wr := run(t, []string{"--allow", "any"}, "unix", "s", "chdir="+mine)
		if wrong.Hits() != 0 {
			t.Fatalf("OPEN DOOR: a relative path was resolved in the supervisor's cwd: %s", wr.out)
		}
		if !wr.reached() || right.Hits() != 2 {
			t.Errorf("wrapped, the relative connect should reach the target's cwd's socket:\n%s", wr.out)
		}
	})

	t.Run("symlink-out-of-chroot", func(t *testing.T) {
		// In a chroot, an absolute symlink resolves inside the jail: the
		// real socket outside is ENOENT natively.
		outside := mkdir(t, filepath.Join(base, "outside"), 0o755)
		jail := mkdir(t, filepath.Join(base, "jail"), 0o755)
		srv := newServer(t, "unix", filepath.Join(outside, "s"))
		if err := os.Symlink(srv.Path, filepath.Join(jail, "link")); err != nil {
			t.Fatal(err)
		}
		nat := run(t, nil, "unix", "/link", "chroot="+jail)
		if nat.reached() || srv.Hits() != 0 {
			t.Fatalf("natively the symlink should not leave the chroot:\n%s", nat.out)
		}
		wr := run(t, []string{"--allow", "any"}, "unix", "/link", "chroot="+jail)
		if wr.reached() || srv.Hits() != 0 {
			t.Fatalf("OPEN DOOR: the supervisor resolved a symlink outside the target's chroot: %s", wr.out)
		}
		if first(wr.detail) != first(nat.detail) {
			t.Errorf("wrapped %s, natively %s", wr.detail, nat.detail)
		}
	})

	// Path rules are matched on the string the target passes; these
	// spellings reach a denied socket under another name.
	denied := mkdir(t, filepath.Join(base, "denied"), 0o755)
	allowed := mkdir(t, filepath.Join(base, "allowed"), 0o755)
	srv := newServer(t, "unix", filepath.Join(denied, "s"))
	if err := os.Symlink(srv.Path, filepath.Join(allowed, "link")); err != nil {
		t.Fatal(err)
	}
	policy := []string{"--deny", "unix:" + denied + "/*=EACCES", "--allow", "any"}
	spellings := []struct {
		name string
		args []string
		why  string
	}{
		{"absolute (control)", []string{srv.Path}, ""},
		{"relative-after-chdir", []string{"s", "chdir=" + denied},
			"a relative sun_path is matched as given (\"s\"), not as the target resolves it (its cwd + s); resolve relative paths against /proc/TID/cwd (or deny them) before deciding"},
		{"symlink", []string{filepath.Join(allowed, "link")},
			"a symlink in an allowed directory points at the denied socket; the rule sees the link's name, the kernel connects the target; decide on the resolved path (realpath in the target's root and cwd, then connect that exact inode) or document that path rules are names, not files"},
		{"dot-dot", []string{allowed + "/../denied/s"},
			"\"..\" in sun_path escapes the glob; clean the path (lexically at least) before matching"},
		{"double-slash", []string{base + "//denied/s"},
			"\"//\" in sun_path defeats the literal prefix of the glob; clean the path before matching"},
		{"dot", []string{base + "/./denied/s"},
			"\"/./\" in sun_path defeats the glob; clean the path before matching"},
	}
	for _, s := range spellings {
		t.Run("path-rule-"+s.name, func(t *testing.T) {
			before := srv.Hits()
			nat := run(t, nil, append([]string{"unix"}, s.args...)...)
			if !nat.reached() || srv.Hits() != before+1 {
				t.Fatalf("natively this spelling should reach the socket:\n%s", nat.out)
			}
			wr := run(t, policy, append([]string{"unix"}, s.args...)...)
			if wr.reached() || srv.Hits() != before+1 {
				t.Fatalf("OPEN DOOR: %s (wrapped: %s)", s.why, strings.TrimSpace(wr.out))
			}
		})
	}
}

func first(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
