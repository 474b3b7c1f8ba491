package attacks

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sendFlags wrap the send tests: one deny rule no test sends to, so that
// every send is decided and performed by connvisor.
var sendFlags = []string{"-q", "--deny", "127.0.0.9:1", "--allow", "any"}

// TestSendControlMessages (issue 12, doors 1 and 10): control messages the
// kernel judges with the sender's privileges are judged with the target's,
// not the supervisor's, and one that reroutes a datagram (an IP source
// route) is refused.
func TestSendControlMessages(t *testing.T) {
	needAttack(t)
	srv := newServer(t, "udp", "")
	asNobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", attackBin}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv(1) to drop to nobody")
	}
	for _, tc := range []struct {
		name, kind string
		nobody     bool
		native     string // what the kernel answers natively
		wrapped    string // and wrapped
	}{
		// Natively SO_MARK needs CAP_NET_RAW or CAP_NET_ADMIN; sent by a
		// root supervisor it was accepted for anyone.
		{"mark as nobody", "mark", true, "EPERM", "EPERM"},
		{"mark as root", "mark", false, "ok", "ok"},
		// A loose source route: accepted by the kernel, refused wrapped
		// (the packet would go on to hosts the policy never decided).
		{"source route", "retopts", false, "ok", "EPERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"cmsg-send", "127.0.0.1", port(srv.Port), tc.kind}
			var nat, wr string
			if tc.nobody {
				nat = runLine(t, append(asNobody, args...), "RESULT ")
				wr = runLine(t, append(bins.WrapArgv(sendFlags, asNobody...), args...), "RESULT ")
			} else {
				nat = runLine(t, append([]string{attackBin}, args...), "RESULT ")
				wr = runLine(t, bins.WrapArgv(sendFlags, append([]string{attackBin}, args...)...), "RESULT ")
			}
			if nat != tc.native {
				t.Fatalf("natively %s, the test expects %s", nat, tc.native)
			}
			if wr != tc.wrapped {
				t.Errorf("OPEN DOOR: wrapped %s, want %s (natively %s)", wr, tc.wrapped, nat)
			}
		})
	}
}

// runLine runs argv and returns what follows prefix on its first line
// starting with it.
func runLine(t *testing.T, argv []string, prefix string) string {
	t.Helper()
	out, _ := runRusage(t, argv)
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("%v printed no %q line:\n%s", argv, prefix, out)
	return ""
}

// runRusage runs argv and returns its output and the largest resident
// set (KiB) of it and every descendant it waited for.
func runRusage(t *testing.T, argv []string) (string, int64) {
	t.Helper()
	r := attack(t, argv)
	t.Logf("%s: %s (max RSS %d KiB)", strings.Join(argv, " "), strings.TrimSpace(r.Stdout), r.MaxRSS)
	return r.Stdout, r.MaxRSS
}

// maxSupervisorRSS bounds what the supervisor may hold for the memory
// doors: a few MiB of copies at a time, far from the GiB they once took.
const maxSupervisorRSS = 128 << 10 // KiB

// TestSendMemoryBounded (issue 12, door 8): what one send, and every held
// send together, makes the supervisor copy is bounded.
func TestSendMemoryBounded(t *testing.T) {
	needAttack(t)
	srv := newServer(t, "udp", "")
	wrap := bins.WrapArgv(sendFlags, attackBin)
	t.Run("sendmmsg of 1024 × 1 MiB", func(t *testing.T) {
		args := []string{"mmsg-huge", "127.0.0.1", port(srv.Port)}
		nat := runLine(t, append([]string{attackBin}, args...), "RESULT ")
		out, rss := runRusage(t, append(wrap, args...))
		if !strings.Contains(out, "RESULT "+nat) {
			t.Errorf("wrapped %q, natively %s", out, nat)
		}
		if rss > maxSupervisorRSS {
			t.Errorf("OPEN DOOR: the supervisor grew to %d MiB", rss>>10)
		}
	})
	t.Run("three sends held for a peer that never reads", func(t *testing.T) {
		out, rss := runRusage(t, append(wrap, "held-sends", "3"))
		if !strings.Contains(out, "RESULT held") {
			t.Fatalf("no result:\n%s", out)
		}
		if rss > maxSupervisorRSS {
			t.Errorf("OPEN DOOR: the supervisor grew to %d MiB", rss>>10)
		}
	})
}

// TestSendInterrupted (issue 12, door 9): a blocking send held for room
// and interrupted by a signal: the peer never gets more than the program
// is told was sent, whether the call restarts (SA_RESTART) or the program
// retries it after EINTR.
func TestSendInterrupted(t *testing.T) {
	needAttack(t)
	for _, how := range []string{"restart", "retry"} {
		t.Run(how, func(t *testing.T) {
			nat := runLine(t, []string{attackBin, "send-interrupt", how}, "RESULT ")
			if !strings.HasPrefix(nat, "same") {
				t.Fatalf("natively %s", nat)
			}
			wr := runLine(t, bins.WrapArgv(sendFlags, attackBin, "send-interrupt", how), "RESULT ")
			if !strings.HasPrefix(wr, "same") {
				t.Errorf("OPEN DOOR: wrapped %s (natively %s)", wr, nat)
			}
		})
	}
}

// TestSendmmsgExec (issue 12, door 5): a sendmmsg whose thread is ended by
// another thread's exec must not have its later entries decided as the new
// executable. The policy allows the second server only to /usr/bin/true.
func TestSendmmsgExec(t *testing.T) {
	needAttack(t)
	exe, err := filepath.EvalSymlinks("/usr/bin/true")
	if err != nil {
		t.Skip("no /usr/bin/true")
	}
	all, only := newServer(t, "udp", ""), newServer(t, "udp", "")
	args := []string{"mmsg-exec", "127.0.0.1", port(all.Port), port(only.Port), exe}
	run(t, nil, args...)
	if only.Hits() == 0 {
		t.Skip("natively the exec came before any entry for the second server; nothing to compare")
	}
	pol := filepath.Join(t.TempDir(), "p.policy")
	body := fmt.Sprintf("allow udp 127.0.0.1 port %d\nallow udp 127.0.0.1 port %d exe=%s\ndefault deny\n", all.Port, only.Port, exe)
	if err := os.WriteFile(pol, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		before := only.Hits()
		run(t, []string{"--policy", pol}, args...)
		time.Sleep(50 * time.Millisecond) // let the server count what arrived
		if got := only.Hits() - before; got != 0 {
			t.Fatalf("OPEN DOOR: %d datagrams reached the server allowed only to %s", got, exe)
		}
	}
}
