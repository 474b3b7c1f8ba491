package supervisor

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/policy"
)

// The summary lists audit mode's would-deny destinations first, with a
// column of their own, and has no such column when there are none.
func TestSummaryWouldDenyFirst(t *testing.T) {
	s := newStats()
	dest := func(text string) policy.Dest {
		d, err := policy.ParseDest(text)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for range 5 {
		s.recordDecision(dest("tcp 127.0.0.1:80"), policy.Decision{Action: policy.Allow}, 0)
	}
	var plain strings.Builder
	s.WriteSummary(&plain)
	if strings.Contains(plain.String(), "would-deny") {
		t.Errorf("a summary without audit has a would-deny column:\n%s", plain.String())
	}
	s.recordDecision(dest("tcp 10.0.0.1:443"), policy.Decision{Action: policy.Allow, WouldDeny: true, WouldErrno: syscall.EACCES}, 0)
	sum := s.Summary()
	if len(sum) != 2 || sum[0].Dest != "tcp 10.0.0.1:443" || sum[0].WouldDeny != 1 || sum[0].Allowed != 1 || sum[1].WouldDeny != 0 {
		t.Fatalf("summary %+v: want the would-deny destination first", sum)
	}
	var b strings.Builder
	s.WriteSummary(&b)
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[0], "would-deny") || !strings.HasPrefix(strings.TrimSpace(lines[1]), "tcp 10.0.0.1:443") {
		t.Errorf("summary table:\n%s", b.String())
	}
}

// Counters handed to another process (an agent's upgrade) add up there to
// the same summary.
func TestStatsJSON(t *testing.T) {
	s := newStats()
	v4 := policy.Dest{Family: syscall.AF_INET, SockType: syscall.SOCK_STREAM, Addr: netip.MustParseAddr("127.0.0.1"), Port: 80}
	v6 := policy.Dest{Family: syscall.AF_INET6, SockType: syscall.SOCK_DGRAM, Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Port: 53}
	s.record(v4, policy.Allow, time.Millisecond)
	s.record(v4, policy.Deny, 2*time.Millisecond)
	s.record(v6, policy.Fail, 3*time.Millisecond)
	s.record(label("(io_uring)"), policy.Deny, 0)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	next := NewStats()
	if err := json.Unmarshal(b, next); err != nil {
		t.Fatal(err)
	}
	if got, want := next.Summary(), s.Summary(); !reflect.DeepEqual(got, want) {
		t.Errorf("after the hand-over:\n%v\nwant\n%v", got, want)
	}
	next.record(v4, policy.Allow, time.Millisecond)
	if got := next.Summary()[0]; got.Seen != 3 || got.Allowed != 2 || got.Denied != 1 {
		t.Errorf("counting on: %+v", got)
	}
}
