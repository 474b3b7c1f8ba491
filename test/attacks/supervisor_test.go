package attacks

import (
	"strings"
	"testing"
)

// TestSupervisorAsTarget: the target (root here) attacks the supervisor
// process itself, its parent: steal the seccomp listener with pidfd_getfd
// and answer its own connects with CONTINUE; read or write its memory,
// ptrace it; kill it. Natively these have no meaning (the parent is the
// test), so they run wrapped only.
func TestSupervisorAsTarget(t *testing.T) {
	needAttack(t)
	t.Run("steal-listener", func(t *testing.T) {
		srv := newServer(t, "tcp", "")
		wr := run(t, denyFlags(srv.Port), "sup-getfd", "127.0.0.1", port(srv.Port))
		if wr.reached() || srv.Hits() > 0 {
			t.Fatalf("OPEN DOOR: the target took the supervisor's listener and answered its own connect: %s", wr.out)
		}
		if wr.verdict != "BLOCKED" {
			t.Fatalf("no verdict:\n%s", wr.out)
		}
	})
	t.Run("memory-and-ptrace", func(t *testing.T) {
		wr := run(t, []string{"--allow", "any"}, "sup-mem")
		if wr.reached() {
			t.Fatalf("OPEN DOOR: the target can write the supervisor's memory (it could rewrite the policy): %s", wr.out)
		}
		info, _ := wr.line("INFO ")
		for _, want := range []string{"write=EPERM", "ptrace=EPERM"} {
			if !strings.Contains(info, want) {
				t.Errorf("want %s: %s", want, info)
			}
		}
	})
	t.Run("kill-supervisor", func(t *testing.T) {
		// Fail closed: with the listener gone every trapped call is ENOSYS.
		srv := newServer(t, "tcp", "")
		wr := run(t, denyFlags(srv.Port), "sup-kill", "127.0.0.1", port(srv.Port))
		if wr.verdict == "SKIP" {
			t.Skip(wr.detail)
		}
		if wr.reached() || srv.Hits() > 0 {
			t.Fatalf("OPEN DOOR: after the supervisor died a denied connect went through: %s", wr.out)
		}
		if !strings.HasPrefix(wr.detail, "ENOSYS") {
			t.Errorf("after the supervisor died the connect got %s, want ENOSYS", wr.detail)
		}
	})
	t.Run("allow-ptrace-opt-out", func(t *testing.T) {
		// --allow-ptrace leaves CAP_SYS_PTRACE to a root command; the
		// README says this gives the supervisor up. Record what it allows.
		srv := newServer(t, "tcp", "")
		wr := run(t, denyFlags(srv.Port, "--allow-ptrace"), "sup-getfd", "127.0.0.1", port(srv.Port))
		if strings.Contains(wr.out, "flag provided but not defined") {
			t.Skip("this connvisor has no --allow-ptrace")
		}
		t.Logf("with --allow-ptrace a root target: %s %s (server hits %d)", wr.verdict, wr.detail, srv.Hits())
	})
}
