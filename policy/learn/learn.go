// Package learn writes a policy from what a run connected to: `connvisor
// learn` feeds every decision of the run to a Recorder, and Write prints a
// policy file in the language of package policy that allows exactly those
// destinations, grouped for review, and denies the rest.
//
// It is pure, like package policy: it is fed destinations and writes text,
// so every behaviour is tested with tables. The output is deterministic:
// the same destinations (and the same times, or none, see Options.NoDates)
// give the same file, byte for byte.
//
// How destinations become rules:
//
//   - inet destinations whose address the run's own DNS answers named
//     (Conn.Host, found through policy.ViaAnswer) are grouped by that host
//     name and protocol, their ports merged, one host a rule: `allow tcp
//     api.example.com port 443`, the comment naming the addresses seen.
//     The addresses of CDNs and cloud services change; the names the
//     program asked for do not. A name with a loopback, private or
//     link-local address gets allow-private (policy.Rebindable), a name a
//     rule cannot hold (policy.IsHostName) stays an address, and
//     Options.NoHosts writes addresses only.
//   - other inet destinations are grouped by protocol (tcp, udp; any for other
//     socket types) and address, their ports merged into lists and ranges
//     (80,443,8000-8002); addresses with the same ports share a rule.
//     IPv4-mapped IPv6 addresses are written as IPv4 (IPv4 rules match
//     them). Options.CollapseIPv4/6 widen addresses to prefixes.
//   - UNIX sockets by path and abstract name, generalised into globs
//     (GeneralisePath, GeneraliseAbstract); unnamed sockets as `unix
//     unnamed`; other families by name (`netlink`).
//   - With Options.PerExe, a destination used by one executable only gets
//     exe= on its rule.
//   - AF_UNSPEC and netlink to the kernel are no egress: no default denies
//     them, so they get no rule.
//
// Each rule has a comment: how many connects (and sends), by which
// executables, first and last seen. A header says how the file was made,
// and `default deny errno=EACCES` ends it.
package learn

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/connvisor/connvisor/policy"
)

// DefaultLimit bounds the distinct destinations (per executable) a
// Recorder keeps: about 200 bytes each. A run past it still works; the
// file says what was left out.
const DefaultLimit = 10000

// Conn is one decided call of the run.
type Conn struct {
	Dest policy.Dest // Exe and UID are ignored: Exe below says who
	Exe  string
	Time time.Time
	// Send: a sendto/sendmsg/sendmmsg with a destination, not a connect.
	Send bool
	// Host is the name that explains an inet destination's address, and
	// HostVia how it was found (the decision's Host and HostVia). Only a
	// name from the tree's own DNS answers (policy.ViaAnswer) is learned:
	// a name resolved at load is what a policy's author wrote, not what
	// the program asked for.
	Host    string
	HostVia policy.HostVia
}

// key is a destination and who used it: what the Recorder counts.
type key struct {
	family   uint16
	proto    proto
	addr     netip.Addr
	port     uint16
	host     string // inet: the name the run's DNS answers gave, "" for none
	path     string // UNIX path or abstract name
	abstract bool
	unnamed  bool
	exe      string
}

type proto uint8

const (
	protoTCP proto = iota
	protoUDP
	protoAny
)

func (p proto) String() string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	}
	return "any"
}

// usage is what the run did with one key.
type usage struct {
	connects, sends uint64
	first, last     time.Time
}

func (u *usage) add(o usage) {
	u.connects += o.connects
	u.sends += o.sends
	if u.first.IsZero() || (!o.first.IsZero() && o.first.Before(u.first)) {
		u.first = o.first
	}
	if o.last.After(u.last) {
		u.last = o.last
	}
}

// Recorder collects the destinations of a run. It is safe for concurrent
// use (the supervisor reports decisions from several goroutines) and keeps
// at most its limit of distinct destinations.
type Recorder struct {
	mu      sync.Mutex
	limit   int
	seen    map[key]*usage
	exes    map[string]string // interned executable paths
	dropped uint64            // calls to destinations past the limit
	lost    map[string]uint64 // dropped calls by kind ("tcp", "unix", ...), a bounded set
}

// NewRecorder returns a Recorder that keeps at most limit distinct
// destinations (DefaultLimit when limit <= 0).
func NewRecorder(limit int) *Recorder {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Recorder{limit: limit, seen: make(map[key]*usage), exes: make(map[string]string), lost: make(map[string]uint64)}
}

// Add records one call. Calls that are no egress (AF_UNSPEC, netlink to
// the kernel) are not recorded: no default denies them.
func (r *Recorder) Add(c Conn) {
	d := &c.Dest
	if policy.NotEgress(d) {
		return
	}
	k := key{family: d.Family}
	switch d.Family {
	case syscall.AF_INET, syscall.AF_INET6:
		k.addr = d.Addr.Unmap().WithZone("")
		k.port = d.Port
		switch d.SockType &^ (syscall.SOCK_NONBLOCK | syscall.SOCK_CLOEXEC) {
		case syscall.SOCK_STREAM:
			k.proto = protoTCP
		case syscall.SOCK_DGRAM:
			k.proto = protoUDP
		default:
			k.proto = protoAny
		}
		if k.addr.Is4() {
			k.family = syscall.AF_INET
		}
		if c.HostVia == policy.ViaAnswer {
			if h := strings.TrimSuffix(strings.ToLower(c.Host), "."); policy.IsHostName(h) {
				k.host = h
			}
		}
	case syscall.AF_UNIX:
		k.abstract = d.Abstract
		k.unnamed = d.Unnamed || (!d.Abstract && d.Path == "")
		if !k.unnamed {
			k.path = d.Path
		}
	}
	u := usage{connects: 1, first: c.Time, last: c.Time}
	if c.Send {
		u = usage{sends: 1, first: c.Time, last: c.Time}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Executables are interned: a tree runs few, and each key holds one.
	exe, ok := r.exes[c.Exe]
	if !ok {
		if len(r.exes) >= r.limit {
			r.drop(k)
			return
		}
		r.exes[c.Exe] = c.Exe
		exe = c.Exe
	}
	k.exe = exe
	if have := r.seen[k]; have != nil {
		have.add(u)
		return
	}
	if len(r.seen) >= r.limit {
		r.drop(k)
		return
	}
	r.seen[k] = &u
}

// drop counts a call that the limit keeps from being recorded.
func (r *Recorder) drop(k key) {
	r.dropped++
	r.lost[kindOf(k)]++
}

// kindOf names a destination's kind for the truncation note.
func kindOf(k key) string {
	switch k.family {
	case syscall.AF_INET, syscall.AF_INET6:
		return k.proto.String()
	case syscall.AF_UNIX:
		switch {
		case k.abstract:
			return "unix abstract"
		case k.unnamed:
			return "unix unnamed"
		}
		return "unix path"
	}
	return "other"
}

// snapshot copies what was recorded, so writing never holds the lock for
// long and the run goes on recording.
type snapshot struct {
	seen    map[key]usage
	limit   int
	dropped uint64
	lost    map[string]uint64
}

func (r *Recorder) snapshot() snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := snapshot{seen: make(map[key]usage, len(r.seen)), limit: r.limit, dropped: r.dropped, lost: make(map[string]uint64, len(r.lost))}
	for k, u := range r.seen {
		s.seen[k] = *u
	}
	for k, n := range r.lost {
		s.lost[k] = n
	}
	return s
}

// Len returns the distinct destinations recorded (per executable).
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// Dropped returns the calls that were not recorded because the limit was
// reached.
func (r *Recorder) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// dest is the policy destination of a key, for asking a policy about it.
func (k key) dest() policy.Dest {
	d := policy.Dest{Family: k.family, Addr: k.addr, Port: k.port, Path: k.path, Abstract: k.abstract, Unnamed: k.unnamed, Exe: k.exe}
	switch k.proto {
	case protoTCP:
		d.SockType = syscall.SOCK_STREAM
	case protoUDP:
		d.SockType = syscall.SOCK_DGRAM
	}
	if k.family == syscall.AF_UNIX {
		d.SockType = syscall.SOCK_STREAM
	}
	return d
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
