package control

import (
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// BenchmarkObserve is what --control adds to every decision: counters,
// the decision log and the metrics.
func BenchmarkObserve(b *testing.B) {
	p := load(b, "allow tcp 127.0.0.1")
	h := &holder{}
	h.SetPolicy(p)
	s := New(h, Config{})
	e := supervisor.Event{
		Time: time.Now(), Tid: 1, Pid: 1, Syscall: "connect",
		Dest:     policy.Dest{Family: syscall.AF_INET, SockType: syscall.SOCK_STREAM, Addr: netip.MustParseAddr("127.0.0.1"), Port: 5432},
		Decision: p.Rules()[0].Decision(), Latency: 20 * time.Microsecond,
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Observe(e)
		}
	})
}
