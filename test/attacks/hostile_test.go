package attacks

import (
	"strings"
	"testing"
)

// TestHostileMemory: bad pointers, lengths and descriptors, and threads
// that exit in the middle of their trapped call. The target must get the
// kernel's own errno, the denied server nothing, and the supervisor must
// still answer afterwards (the program's last, allowed connect).
func TestHostileMemory(t *testing.T) {
	needAttack(t)
	kinds := []string{
		"null", "null-len0", "unmapped", "partial", "partial-exact", "huge-len", "negative-len",
		"short-len", "high-len", "high-fd", "bad-fd", "negative-fd", "not-socket",
		"sendto-unmapped", "sendto-data-unmapped", "sendmsg-name-unmapped", "sendmsg-namelen-huge",
		"sendmsg-hdr-unmapped", "sendmmsg-vlen-huge", "sendmsg-rights-partial", "unix-rights-partial", "thread-exit",
	}
	denied, allowed := newServer(t, "tcp", ""), newServer(t, "tcp", "")
	udpDenied := newServer(t, "udp", "")
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			target := denied
			if strings.HasPrefix(kind, "send") || strings.HasPrefix(kind, "unix-") {
				target = udpDenied
			}
			a := []string{"hostile", kind, "127.0.0.1", port(target.Port), port(allowed.Port)}
			nat := run(t, nil, a...)
			natRes, ok := nat.line("RESULT " + kind)
			if !ok {
				t.Fatalf("natively no result:\n%s", nat.out)
			}
			before := target.Hits()
			wr := run(t, denyFlags(target.Port), a...)
			wrRes, ok := wr.line("RESULT " + kind)
			if !ok {
				t.Fatalf("wrapped no result (did the supervisor crash?):\n%s", wr.out)
			}
			if _, alive := wr.line("ALIVE"); !alive {
				t.Errorf("the supervisor no longer answers after %s:\n%s", kind, wr.out)
			}
			if kind != "thread-exit" && target.Hits() != before {
				t.Fatalf("OPEN DOOR: hostile %s reached the denied server: %s", kind, wr.out)
			}
			switch {
			case kind == "thread-exit":
				// Only survival counts: the threads die mid-call.
			case natRes == "ok" && !strings.HasPrefix(kind, "unix-"):
				// The kernel would have connected: the policy must deny.
				if wrRes != "EACCES" {
					t.Errorf("natively the call succeeds, wrapped it should be denied with EACCES, got %s", wrRes)
				}
			case wrRes != natRes:
				t.Errorf("wrapped errno %s, natively %s", wrRes, natRes)
			}
		})
	}
}
