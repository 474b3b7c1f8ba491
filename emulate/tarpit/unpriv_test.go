package tarpit

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/testutil"
)

// These tests use the tarpit as a supervisor without CAP_NET_RAW and
// CAP_NET_ADMIN does: as root with the privileged parts switched off, and
// as user nobody through TestUnprivilegedAsNobody (where SIOCGSKNS and
// raw sockets really fail).

func unprivilegedSet(t *testing.T) *Set {
	t.Helper()
	tps := newSet(t)
	tps.raw = false
	return tps
}

func TestUnprivilegedAsNobody(t *testing.T) {
	testutil.RerunUnprivileged(t, "TestUnprivileged")
}

func TestUnprivilegedProbe(t *testing.T) {
	tps := newSet(t)
	if root := unix.Geteuid() == 0; tps.Privileged() != root {
		t.Errorf("Privileged() = %v as uid %d", tps.Privileged(), unix.Geteuid())
	}
	if tps.cookie == 0 {
		t.Error("no SO_NETNS_COOKIE for the supervisor's namespace (Linux 5.14+)")
	}
}

// A blackhole stays in SYN_SENT past the kernel's SYN retransmissions
// at 1 s and 2 s: the full accept queue drops them all.
func TestUnprivilegedBlackhole(t *testing.T) {
	checkBlackhole(t, unprivilegedSet(t), 2200*time.Millisecond)
}

// An immediate refusal comes from the kernel's own reset, through
// EINPROGRESS, with the events of a native refusal on loopback.
func TestUnprivilegedRefuse(t *testing.T) {
	tps := unprivilegedSet(t)
	native := nonblockingTCP(t, unix.AF_INET)
	if err := unix.Connect(native, closedLoopbackPort(t)); err != unix.EINPROGRESS {
		t.Fatalf("native connect to a closed loopback port: %v, want EINPROGRESS", err)
	}
	want := failedWith(t, native, unix.ECONNREFUSED, time.Second)
	for _, c := range tarpitCases {
		t.Run(c.name, func(t *testing.T) {
			fd := nonblockingTCP(t, c.domain)
			if err := tps.Refuse(dupFD(t, fd), c.domain, c.mapped); err != nil {
				t.Fatal(err)
			}
			if got := failedWith(t, fd, unix.ECONNREFUSED, time.Second); got != want {
				t.Errorf("revents %#x, a native refusal shows %#x", got, want)
			}
		})
	}
}

// A refusal after a delay arrives with the SYN retransmission that
// follows it, and not before the delay.
func TestUnprivilegedRefuseAfterDelay(t *testing.T) {
	tps := unprivilegedSet(t)
	for _, c := range tarpitCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fd := nonblockingTCP(t, c.domain)
			h, err := tps.HoldRefusable(dupFD(t, fd), c.domain, c.mapped)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			const d = 300 * time.Millisecond
			assertInProgress(t, fd, d)
			if err := h.Fail(unix.ECONNREFUSED); err != nil {
				t.Fatal(err)
			}
			failedWith(t, fd, unix.ECONNREFUSED, 100*time.Millisecond)
			t.Logf("refused %v after the SYN (delay %v)", time.Since(h.sentAt), d)
			if err := h.Fail(unix.ECONNREFUSED); !errors.Is(err, ErrNotInProgress) {
				t.Fatalf("second Fail: %v, want ErrNotInProgress", err)
			}
		})
	}
}

func TestUnprivilegedResetAndTimeout(t *testing.T) {
	tps := unprivilegedSet(t)
	t.Run("ECONNRESET", func(t *testing.T) {
		fd, h := hold(t, tps, tarpitCases[0])
		assertInProgress(t, fd, 100*time.Millisecond)
		if err := h.Fail(unix.ECONNRESET); err != nil {
			t.Fatal(err)
		}
		failedWith(t, fd, unix.ECONNRESET, 100*time.Millisecond)
	})
	for _, c := range tarpitCases {
		t.Run("ETIMEDOUT/"+c.name, func(t *testing.T) {
			t.Parallel()
			fd, h := hold(t, tps, c)
			const d = 1500 * time.Millisecond // after the first retransmission: exact
			if err := h.TimeoutAt(h.sentAt.Add(d)); err != nil {
				t.Fatal(err)
			}
			assertInProgress(t, fd, d-200*time.Millisecond)
			failedWith(t, fd, unix.ETIMEDOUT, time.Second)
			t.Logf("ETIMEDOUT %v after the SYN (deadline %v)", time.Since(h.sentAt), d)
			if err := h.Fail(unix.ETIMEDOUT); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// What cannot be delivered asynchronously is said, and Limits names it.
func TestUnprivilegedLimits(t *testing.T) {
	tps := unprivilegedSet(t)
	for _, tc := range []struct {
		errno syscall.Errno
		wait  time.Duration
		async bool
		limit string // a word the limit must say; "" for none
	}{
		{0, 0, true, ""},
		{0, 2 * time.Second, true, ""},
		{0, 300 * time.Millisecond, true, "ETIMEDOUT arrives after 1s"},
		{unix.ETIMEDOUT, 300 * time.Millisecond, true, "ETIMEDOUT arrives after 1s"},
		{unix.ETIMEDOUT, 0, true, "ETIMEDOUT arrives after 1s"},
		{unix.ETIMEDOUT, 2 * time.Second, true, ""},
		{unix.ECONNRESET, 300 * time.Millisecond, true, ""},
		{unix.ECONNREFUSED, 0, true, ""},
		{unix.ECONNREFUSED, 300 * time.Millisecond, true, "about 1s after the connect"},
		{unix.ENETUNREACH, 0, false, "connect itself returns ENETUNREACH"},
		{unix.EHOSTUNREACH, time.Second, false, "held for 1s"},
	} {
		if tc.errno != 0 {
			if got := tps.FailsAsync(unix.AF_INET, false, tc.errno); got != tc.async {
				t.Errorf("FailsAsync(%v) = %v", tc.errno, got)
			}
		}
		got := tps.Limits(tc.errno, tc.wait)
		if (tc.limit == "") != (got == "") || !strings.Contains(got, tc.limit) {
			t.Errorf("Limits(%v, %v) = %q, want one saying %q", tc.errno, tc.wait, got, tc.limit)
		}
	}
	fd, h := hold(t, tps, tarpitCases[0])
	if err := h.Fail(unix.ENETUNREACH); !errors.Is(err, ErrNotAsync) {
		t.Fatalf("Fail(ENETUNREACH): %v, want ErrNotAsync", err)
	}
	assertInProgress(t, fd, 50*time.Millisecond)
}

// The retransmission schedule Limits predicts is the one measured:
// linear first (Linux 6.5+), then doubling.
func TestUnprivilegedRetransmitSchedule(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_syn_linear_timeouts")
	if err != nil || strings.TrimSpace(string(b)) != "4" {
		t.Skipf("tcp_syn_linear_timeouts is not 4 here (%q, %v): the table is for that default", b, err)
	}
	for d, want := range map[time.Duration]time.Duration{
		300 * time.Millisecond: time.Second, time.Second: time.Second, 1300 * time.Millisecond: 2 * time.Second,
		4500 * time.Millisecond: 5 * time.Second, 6 * time.Second: 7 * time.Second, 8 * time.Second: 11 * time.Second,
	} {
		if got := synRetransmitAfter(d); got != want {
			t.Errorf("synRetransmitAfter(%v) = %v, want %v", d, got, want)
		}
	}
}

func TestUnprivilegedNoFDLeak(t *testing.T) {
	before := checkNoFDLeak(t)
	tps, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tps.raw = false
	for _, c := range tarpitCases {
		fd := nonblockingTCP(t, c.domain)
		dup, _ := unix.Dup(fd)
		h, err := tps.HoldRefusable(dup, c.domain, c.mapped)
		if err != nil {
			t.Fatal(err)
		}
		h.Close() // the private listener goes with it
		unix.Close(dup)
	}
	// Each family: the full listener, its filler and the closed port.
	if got := countFDs(t) - before - 3; got != 6 {
		t.Errorf("%d fds open while holding, want 6 (2 families × listener, filler, closed port)", got)
	}
	tps.Close()
}
