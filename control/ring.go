package control

import (
	"sync"
	"time"
)

// Decision is one entry of the decision log the API serves.
type Decision struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Pid     int       `json:"pid"`
	Tid     int       `json:"tid"`
	Exe     string    `json:"exe,omitempty"`
	Syscall string    `json:"syscall"`
	Family  string    `json:"family"`
	Dest    string    `json:"dest"`
	// Decision is allow, deny, log or fail; Rule the rule's origin
	// ("api#7", "p.policy:3", "(default)"), RuleID its id (-1: none).
	Decision string `json:"decision"`
	Rule     string `json:"rule"`
	RuleID   int64  `json:"rule_id"`
	// Errno is what the call returned ("" for success); Injected the
	// fault a fail rule injected.
	Errno     string  `json:"errno,omitempty"`
	Injected  string  `json:"injected,omitempty"`
	LatencyUS float64 `json:"latency_us"`
}

// ring keeps the last len(buf) decisions, numbered from 1.
type ring struct {
	mu   sync.Mutex
	buf  []Decision
	next uint64 // seq of the next decision
}

func newRing(n int) *ring { return &ring{buf: make([]Decision, n), next: 1} }

func (r *ring) add(d Decision) {
	r.mu.Lock()
	d.Seq = r.next
	r.buf[r.next%uint64(len(r.buf))] = d
	r.next++
	r.mu.Unlock()
}

// since returns at most limit decisions with a seq above seq, oldest first,
// the seq to ask from next time, and how many asked for are gone already.
func (r *ring) since(seq uint64, limit int) (out []Decision, next uint64, dropped uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := uint64(1)
	if r.next > uint64(len(r.buf)) {
		oldest = r.next - uint64(len(r.buf))
	}
	from := seq + 1
	if from < oldest {
		dropped = oldest - from
		from = oldest
	}
	for s := from; s < r.next && len(out) < limit; s++ {
		out = append(out, r.buf[s%uint64(len(r.buf))])
	}
	next = from - 1 + uint64(len(out))
	if from > r.next {
		next = r.next - 1 // asked from the future: start over from now
	}
	return out, next, dropped
}

// last is the seq of the newest decision (0: none yet).
func (r *ring) last() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next - 1
}
