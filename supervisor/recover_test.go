package supervisor

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/fd"
)

// TestPanicFailsTheCallClosed: a panic while handling one notification is
// recovered, logged with its stack and counted, and the loop's handler
// returns normally, so supervision goes on. The supervisor here has no
// policy, so handle panics on its first look at it.
func TestPanicFailsTheCallClosed(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	s := &Supervisor{listener: fd.New(-1), log: zap.New(core), stats: newStats(), arch: nativeAuditArch()}
	for i := 0; i < 3; i++ {
		s.handleSurviving(newReceiver(), &Notification{ID: uint64(i), Nr: unix.SYS_CONNECT, Arch: s.arch})
	}
	var recovered int
	for _, e := range logs.All() {
		if strings.HasPrefix(e.Message, "internal error") {
			recovered++
			if e.ContextMap()["stack"] == nil {
				t.Errorf("no stack in %v", e.ContextMap())
			}
		}
	}
	if recovered != 3 {
		t.Fatalf("%d panics logged as internal errors, want 3: %v", recovered, logs.All())
	}
	var counted int
	for _, d := range s.stats.Summary() {
		if strings.Contains(d.Dest, "internal error") {
			counted = d.Denied
		}
	}
	if counted != 3 {
		t.Errorf("internal errors counted %d times in the summary, want 3", counted)
	}
}
