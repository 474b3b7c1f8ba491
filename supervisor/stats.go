package supervisor

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/connvisor/connvisor/policy"
)

// Stats counts decisions per destination for the exit summary.
type Stats struct {
	mu    sync.Mutex
	dests map[policy.Dest]*destStats
}

type destStats struct {
	seen, allowed, denied, failed int
	wouldDeny                     int // allowed by audit mode only
	latencies                     []time.Duration
}

// maxLatencySamples bounds the memory one destination's percentiles take
// (with at most 10,000 destinations: 20 MiB in the worst case).
const maxLatencySamples = 256

func newStats() *Stats { return &Stats{dests: make(map[policy.Dest]*destStats)} }

// NewStats returns empty counters, for a holder of a supervisor that keeps
// counts of its own from OnDecision events (the control API, whose
// counters reset without touching the exit summary's).
func NewStats() *Stats { return newStats() }

// Record counts one decision, as the supervisor counts its own.
func (s *Stats) Record(e Event) { s.record(e.Dest, e.Decision.Action, e.Latency) }

// Reset forgets every count.
func (s *Stats) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.dests)
}

// labelFamily marks a summary line that is a label (Path), not a
// destination: refused side doors, and the destinations past the bound.
const labelFamily = 0xffff

func label(text string) policy.Dest { return policy.Dest{Family: labelFamily, Path: text} }

// hostFamily marks a summary line of a host name: connects to every
// address a name explains count as one line, "tcp api.example.com:443".
const hostFamily = 0xfffe

// summaryKey is the line a decision counts on: its host when a name
// explains the address, else the destination.
func summaryKey(d policy.Dest, host string) policy.Dest {
	if host == "" {
		return d
	}
	return policy.Dest{Family: hostFamily, SockType: d.SockType, Port: d.Port, Path: host}
}

// record counts one decision. It keys on the destination itself, not its
// text, so counting allocates nothing on the hot path; the process fields
// are dropped from the key.
func (s *Stats) record(dest policy.Dest, a policy.Action, latency time.Duration) {
	s.recordDecision(dest, policy.Decision{Action: a}, latency)
}

// recordDecision counts one decision, would-denies of audit mode apart.
func (s *Stats) recordDecision(dest policy.Dest, dec policy.Decision, latency time.Duration) {
	a := dec.Action
	dest.Exe, dest.UID = "", 0
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dests[dest]
	if d == nil {
		if len(s.dests) >= 10000 {
			dest = label("(other destinations)")
		}
		if d = s.dests[dest]; d == nil {
			d = &destStats{}
			s.dests[dest] = d
		}
	}
	d.seen++
	switch a {
	case policy.Deny:
		d.denied++
	case policy.Fail:
		d.failed++
	default:
		d.allowed++
	}
	if dec.WouldDeny {
		d.wouldDeny++
	}
	if len(d.latencies) < maxLatencySamples {
		d.latencies = append(d.latencies, latency)
	} else {
		// Keep a spread of samples without growing: overwrite in turn.
		d.latencies[d.seen%maxLatencySamples] = latency
	}
}

// DestSummary is one destination's line of the summary.
type DestSummary struct {
	Dest                          string
	Seen, Allowed, Denied, Failed int
	// WouldDeny counts the connects audit mode allowed (also in Allowed).
	WouldDeny     int
	P50, P90, P99 time.Duration
}

// Summary returns one line per destination: those with would-denies of
// audit mode first (what a trial run is for), then most-seen first.
func (s *Stats) Summary() []DestSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DestSummary, 0, len(s.dests))
	for dest, d := range s.dests {
		name := dest.String()
		switch dest.Family {
		case labelFamily:
			name = dest.Path
		case hostFamily:
			kind := dest
			kind.Family, kind.Addr = syscall.AF_INET, netip.IPv4Unspecified()
			proto, _, _ := strings.Cut(kind.String(), " ")
			name = proto + " " + dest.Path + ":" + strconv.Itoa(int(dest.Port))
		}
		l := slices.Clone(d.latencies)
		slices.Sort(l)
		out = append(out, DestSummary{
			Dest: name, Seen: d.seen, Allowed: d.allowed, Denied: d.denied, Failed: d.failed, WouldDeny: d.wouldDeny,
			P50: percentile(l, 50), P90: percentile(l, 90), P99: percentile(l, 99),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if wi, wj := out[i].WouldDeny > 0, out[j].WouldDeny > 0; wi != wj {
			return wi
		}
		if out[i].Seen != out[j].Seen {
			return out[i].Seen > out[j].Seen
		}
		return out[i].Dest < out[j].Dest
	})
	return out
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

// WriteSummary prints the summary as a table; a would-deny column comes
// when audit mode allowed anything it would have denied.
func (s *Stats) WriteSummary(w io.Writer) error {
	sum := s.Summary()
	audit := len(sum) > 0 && sum[0].WouldDeny > 0
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "destination\tseen\tallowed\tdenied\tfailed\t"
	if audit {
		head += "would-deny\t"
	}
	fmt.Fprintln(tw, head+"p50\tp90\tp99\t")
	for _, d := range sum {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t", printable(d.Dest), d.Seen, d.Allowed, d.Denied, d.Failed)
		if audit {
			fmt.Fprintf(tw, "%d\t", d.WouldDeny)
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t\n", d.P50.Round(time.Microsecond), d.P90.Round(time.Microsecond), d.P99.Round(time.Microsecond))
	}
	return tw.Flush()
}

// printable keeps a destination on one short line: abstract UNIX names may
// hold any bytes.
func printable(s string) string {
	q := strconv.QuoteToASCII(s)
	if q[1:len(q)-1] == s {
		q = s
	}
	if len(q) > 60 {
		q = q[:57] + "..."
	}
	return q
}

// statsEntry is one destination's counters in JSON, for handing them to
// another process (an agent's upgrade).
type statsEntry struct {
	Dest                          policy.Dest     `json:"dest"`
	Seen, Allowed, Denied, Failed int             `json:",omitempty"`
	WouldDeny                     int             `json:",omitempty"`
	Latencies                     []time.Duration `json:"latencies,omitempty"`
}

// MarshalJSON writes the counters, latency samples included.
func (s *Stats) MarshalJSON() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]statsEntry, 0, len(s.dests))
	for dest, d := range s.dests {
		out = append(out, statsEntry{Dest: dest, Seen: d.seen, Allowed: d.allowed, Denied: d.denied, Failed: d.failed,
			WouldDeny: d.wouldDeny, Latencies: d.latencies})
	}
	return json.Marshal(out)
}

// UnmarshalJSON adds counters written by MarshalJSON to s.
func (s *Stats) UnmarshalJSON(b []byte) error {
	var in []statsEntry
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dests == nil {
		s.dests = make(map[policy.Dest]*destStats)
	}
	for _, e := range in {
		d := s.dests[e.Dest]
		if d == nil {
			if len(s.dests) >= 10000 {
				continue
			}
			d = &destStats{}
			s.dests[e.Dest] = d
		}
		d.seen += e.Seen
		d.allowed += e.Allowed
		d.denied += e.Denied
		d.failed += e.Failed
		d.wouldDeny += e.WouldDeny
		for _, l := range e.Latencies {
			if len(d.latencies) < maxLatencySamples {
				d.latencies = append(d.latencies, l)
			}
		}
	}
	return nil
}
