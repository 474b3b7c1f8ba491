package faults

import (
	"strconv"
	"strings"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

// A Go program takes its real error paths: Go connects nonblocking and
// learns the outcome from epoll and SO_ERROR, so a blackhole must end in
// its own dial timeout and a refusal must be syscall.ECONNREFUSED.
func TestGoClientErrorPaths(t *testing.T) {
	srv := testutil.Listen(t)
	field := func(line, key string) string {
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok && k == key {
				return v
			}
		}
		return ""
	}
	msOf := func(t *testing.T, line string) int {
		ms, err := strconv.Atoi(field(line, "ms"))
		if err != nil {
			t.Fatalf("no ms in %q", line)
		}
		return ms
	}
	t.Run("blackhole ends in the dial timeout", func(t *testing.T) {
		r := wrapped(t, []string{"-q", "--fail", dest(srv.Port) + "=blackhole"}, goconnector, "once", dest(srv.Port), "300ms")
		line := strings.TrimSpace(r.Stdout)
		if !strings.Contains(line, "i/o timeout") || field(line, "timeout") != "true" {
			t.Errorf("want an i/o timeout with net.Error.Timeout() true, got %q", line)
		}
		if ms := msOf(t, line); ms < 300 || ms > 1000 {
			t.Errorf("the dial took %d ms, want 300..1000", ms)
		}
	})
	t.Run("blackhole with a longer timeout= still ends in the dial timeout", func(t *testing.T) {
		// The rule's 2 s must not outlive the program's own 300 ms.
		r := wrapped(t, []string{"-q", "--fail", dest(srv.Port) + "=blackhole:timeout=2s"}, goconnector, "once", dest(srv.Port), "300ms")
		line := strings.TrimSpace(r.Stdout)
		if !strings.Contains(line, "i/o timeout") || field(line, "timeout") != "true" {
			t.Errorf("want an i/o timeout with net.Error.Timeout() true, got %q", line)
		}
		if ms := msOf(t, line); ms < 300 || ms > 1000 {
			t.Errorf("the dial took %d ms, want 300..1000", ms)
		}
	})
	t.Run("ECONNREFUSED is errors.Is syscall.ECONNREFUSED", func(t *testing.T) {
		r := wrapped(t, []string{"-q", "--fail", dest(srv.Port) + "=ECONNREFUSED"}, goconnector, "once", dest(srv.Port), "300ms")
		line := strings.TrimSpace(r.Stdout)
		if field(line, "refused") != "true" || field(line, "timeout") != "false" || !strings.Contains(line, "connection refused") {
			t.Errorf("want connection refused, errors.Is ECONNREFUSED and no timeout, got %q", line)
		}
	})
	t.Run("ENETUNREACH after a delay", func(t *testing.T) {
		r := wrapped(t, []string{"-q", "--fail", dest(srv.Port) + "=ENETUNREACH:delay=300ms"}, goconnector, "once", dest(srv.Port), "2s")
		line := strings.TrimSpace(r.Stdout)
		if field(line, "unreachable") != "true" {
			t.Errorf("want errors.Is ENETUNREACH, got %q", line)
		}
		if ms := msOf(t, line); ms < 300 || ms > 1000 {
			t.Errorf("the dial took %d ms, want 300..1000", ms)
		}
	})
	if n := srv.WaitAccepted(0); n != 0 {
		t.Errorf("the server accepted %d connections; every dial was failed", n)
	}
	t.Run("unfaulted dial succeeds", func(t *testing.T) {
		r := wrapped(t, []string{"-q", "--fail", dest(srv.Port) + "=ECONNREFUSED:when=2"}, goconnector, "once", dest(srv.Port), "2s")
		if line := strings.TrimSpace(r.Stdout); !strings.HasPrefix(line, "ok ") {
			t.Errorf("the first dial is not selected by when=2 and must succeed, got %q", line)
		}
	})
}
