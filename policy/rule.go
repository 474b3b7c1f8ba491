package policy

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// scope says which families a rule can match at all. The index keeps one
// list (or trie) per scope, so Decide never looks at rules of another family.
type scope uint8

const (
	scopeAll    scope = iota // every family but AF_UNSPEC (a rule with no destination matcher)
	scopeInet                // AF_INET and AF_INET6, by prefix
	scopeUnix                // AF_UNIX
	scopeFamily              // one other family by number (AF_NETLINK, AF_UNSPEC, ...)
)

type proto uint8

const (
	protoAny proto = iota
	protoTCP
	protoUDP
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

type unixKind uint8

const (
	unixAny      unixKind = iota // every AF_UNIX sockaddr
	unixPath                     // a pathname matching glob
	unixAbstract                 // an abstract name matching glob
	unixUnnamed                  // family only
)

type portRange struct{ lo, hi uint16 }

// Rule is one line of a policy (or one flag). It is immutable once its
// policy is built, except for the match counter of a fault schedule, which
// is shared by every policy that holds the rule (see Prepend, Reresolve).
type Rule struct {
	action Action
	errno  syscall.Errno
	// delay, blackhole, timeout: see Decision.
	delay     time.Duration
	blackhole bool
	timeout   time.Duration

	scope     scope
	proto     proto
	prefixes  []netip.Prefix // scopeInet; empty with no hosts means every address
	hosts     []string       // scopeInet: names, resolved into resolved
	hostAddrs [][]netip.Addr // per host, sorted
	resolved  []netip.Prefix // the hosts' addresses as /32 and /128
	names     []string       // hosts, canonical (lower case, no trailing dot), for learned names
	wild      []string       // wildcards *.example.com, kept as ".example.com"
	groups    []string       // address groups (loopback, private, ...), as written
	groupPfx  []netip.Prefix // their prefixes
	// allowPrivate: a learned name may allow a loopback, private or
	// link-local address (rebinding protection off for this rule).
	allowPrivate bool
	ports        []portRange // sorted, merged; empty means every port
	unix         unixKind
	glob         *glob  // unixPath, unixAbstract
	family       uint16 // scopeFamily
	exe          *glob  // nil: any executable
	uidSet       bool
	uidLo        uint32
	uidHi        uint32

	// Fault schedule (fail rules): when and probability decide, per
	// matching connect n (1-based), whether the rule fires.
	whenSet   bool
	whenFirst uint64
	whenLast  uint64 // 0: no end
	whenStep  uint64
	probSet   bool
	prob      float64
	probThr   uint64         // prob scaled to 2^64 (probAlways when 1)
	count     *atomic.Uint64 // connects that matched; shared across policy versions
	id        uint64         // stable number of the rule for probability replay

	// Time window (fail rules): the rule fires from winAfter past its
	// start, for winFor (0: no end), again every winEvery (0: once).
	// start is the window's clock origin in Unix nanoseconds, set when the
	// rule enters a policy (Load, Prepend, Insert) and by Reset; it is
	// shared across policy versions, like count.
	winSet   bool
	winAfter time.Duration
	winFor   time.Duration
	winEvery time.Duration
	start    *atomic.Int64

	// Where the rule came from, for errors, warnings and decisions.
	file string
	line int
	flag string // "--deny" for a flag rule
	// origin overrides Origin for a rule added while running ("api#7").
	origin string
	def    bool   // from the embedded default
	src    string // as written
	// isDefault: the rule is a `default` line; it sets the fallback
	// decision and is never in the rule list.
	isDefault bool

	decision Decision // what firing returns; Rule points back to this rule

	// hostBits are the CIDRs written with host bits set (10.20.3.4/16),
	// as written: they match the whole network, which Warnings says.
	hostBits []string
}

// HasProbability reports whether the rule fires with a probability=, so
// that a run is replayed with its seed.
func (r *Rule) HasProbability() bool { return r.probSet }

// Action returns what the rule does when it matches and fires.
func (r *Rule) Action() Action { return r.action }

// Decision returns what the rule answers when it decides a connect.
func (r *Rule) Decision() Decision { return r.decision }

// Origin says where the rule was written: "payments.policy:7", the flag
// ("--deny"), or "default" for the embedded default policy.
func (r *Rule) Origin() string {
	switch {
	case r.origin != "":
		return r.origin
	case r.def:
		return "default"
	case r.flag != "":
		return r.flag
	}
	return r.file + ":" + strconv.Itoa(r.line)
}

// Hosts returns the host names the rule matches by (resolved at load).
func (r *Rule) Hosts() []string { return slices.Clone(r.hosts) }

// Addresses returns the addresses the rule's host names resolved to.
func (r *Rule) Addresses() []netip.Prefix { return slices.Clone(r.resolved) }

// hasSchedule reports whether the rule may decline a matching connect (and
// so let it fall through to the next rule).
func (r *Rule) hasSchedule() bool { return r.whenSet || r.probSet || r.winSet }

// ID is the rule's number, stable for the life of the rule: it names the
// rule in the control API (Insert after it, Remove it) and seeds its
// probability= draws.
func (r *Rule) ID() uint64 { return r.id }

// Window returns the rule's time window: it fires from after past its
// start, for forDur (0: no end), again every period (0: once). ok is false
// for a rule without after=, for= or every=.
func (r *Rule) Window() (after, forDur, every time.Duration, ok bool) {
	return r.winAfter, r.winFor, r.winEvery, r.winSet
}

// inWindow reports whether now (Unix nanoseconds) falls in the rule's
// time window.
func (r *Rule) inWindow(now int64) bool {
	el := time.Duration(now - r.start.Load())
	if el < r.winAfter {
		return false
	}
	el -= r.winAfter
	if r.winEvery > 0 {
		el %= r.winEvery
	}
	return r.winFor == 0 || el < r.winFor
}

// startClock gives the rule fresh schedule state: a match counter from 0
// and a window starting at now (Unix nanoseconds).
func (r *Rule) startClock(now int64) {
	if r.hasSchedule() {
		r.count = new(atomic.Uint64)
	}
	if r.winSet {
		r.start = new(atomic.Int64)
		r.start.Store(now)
	}
}

// matchRest checks everything but the family and address, which the index
// has already checked. It must not allocate.
func (r *Rule) matchRest(d *Dest) bool {
	switch r.scope {
	case scopeInet:
		if r.proto != protoAny {
			st := d.SockType &^ (syscall.SOCK_NONBLOCK | syscall.SOCK_CLOEXEC)
			if r.proto == protoTCP && st != syscall.SOCK_STREAM {
				return false
			}
			if r.proto == protoUDP && st != syscall.SOCK_DGRAM {
				return false
			}
		}
		if len(r.ports) > 0 && !r.matchPort(d.Port) {
			return false
		}
	case scopeUnix:
		switch r.unix {
		case unixPath:
			if d.Abstract || d.Unnamed || !r.glob.match(d.Path) {
				return false
			}
		case unixAbstract:
			if !d.Abstract || !r.glob.match(d.Path) {
				return false
			}
		case unixUnnamed:
			if !d.Unnamed {
				return false
			}
		}
	}
	if r.exe != nil && !r.exe.match(d.Exe) {
		return false
	}
	if r.uidSet && (d.UID < r.uidLo || d.UID > r.uidHi) {
		return false
	}
	return true
}

func (r *Rule) matchPort(p uint16) bool {
	// Port lists are short; a linear scan beats a binary search here.
	for _, pr := range r.ports {
		if p < pr.lo {
			return false
		}
		if p <= pr.hi {
			return true
		}
	}
	return false
}

// matchAddr is the slow path of the index, used by the linear reference
// matcher in tests and by warnings: does addr fall in one of the rule's
// prefixes?
func (r *Rule) matchAddr(a netip.Addr) bool {
	a = a.Unmap()
	if r.everyAddr() {
		return true
	}
	for _, p := range r.groupPfx {
		if p.Contains(a) {
			return true
		}
	}
	for _, p := range r.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	for _, p := range r.resolved {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// matches is the reference matcher: family, address and the rest. Decide
// uses the index instead; tests compare the two.
func (r *Rule) matches(d *Dest) bool {
	switch r.scope {
	case scopeAll:
		if d.Family == syscall.AF_UNSPEC {
			return false
		}
	case scopeInet:
		if d.Family != syscall.AF_INET && d.Family != syscall.AF_INET6 {
			return false
		}
		if !d.Addr.IsValid() || !r.matchAddr(d.Addr) {
			return false
		}
	case scopeUnix:
		if d.Family != syscall.AF_UNIX {
			return false
		}
	case scopeFamily:
		if d.Family != r.family {
			return false
		}
	}
	return r.matchRest(d)
}

// take counts one connect that matched the rule inside its time window
// and reports whether the rule answers it: when= and probability= apply
// to the count. A connect outside the window is never counted (Decide
// passes the rule over), so that `after=5s when=1..2` fails the first two
// connects after 5 s.
func (r *Rule) take(seed int64) bool {
	n := r.count.Add(1)
	if r.whenSet {
		if n < r.whenFirst || (r.whenLast != 0 && n > r.whenLast) || (n-r.whenFirst)%r.whenStep != 0 {
			return false
		}
	}
	if r.probSet {
		return r.probThr == probAlways || chance(seed, r.id, n) < r.probThr
	}
	return true
}

// probAlways marks probability=1, which no 64-bit threshold can express.
const probAlways = ^uint64(0)

// chance is a deterministic pseudo-random number for match n of rule id
// under seed: the same seed and the same sequence of connects fail the same
// way, whatever the goroutine scheduling between rules.
func chance(seed int64, id, n uint64) uint64 {
	x := splitmix(uint64(seed) ^ splitmix(id+0x9e3779b97f4a7c15))
	return splitmix(x ^ n)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Matches reports how many connects have matched the rule's fault schedule
// so far (0 for rules without one).
func (r *Rule) Matches() uint64 {
	if r.count == nil {
		return 0
	}
	return r.count.Load()
}

// String returns the rule in the normalised long file form, which parses
// back to the same rule.
func (r *Rule) String() string {
	var b strings.Builder
	if r.isDefault {
		b.WriteString("default ")
	}
	b.WriteString(r.action.String())
	word := func(s string) {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	if !r.isDefault {
		switch r.scope {
		case scopeAll:
			word("any")
		case scopeInet:
			word(r.proto.String())
			for _, p := range r.prefixes {
				word(formatPrefix(p, true))
			}
			for _, g := range r.groups {
				word(g)
			}
			for _, h := range r.hosts {
				word(h)
			}
			for _, w := range r.wild {
				word("*" + w)
			}
			if r.allowPrivate {
				word("allow-private")
			}
			if len(r.ports) > 0 {
				word("port")
				word(formatPorts(r.ports))
			}
		case scopeUnix:
			word("unix")
			switch r.unix {
			case unixPath:
				word(r.glob.src)
			case unixAbstract:
				word("@" + r.glob.src)
			case unixUnnamed:
				word("unnamed")
			}
		case scopeFamily:
			word(familyName(r.family))
		}
		if r.exe != nil {
			word("exe=" + r.exe.src)
		}
		if r.uidSet {
			word("uid=" + formatUID(r.uidLo, r.uidHi))
		}
	}
	for _, o := range r.outcomeWords() {
		word(o)
	}
	return b.String()
}

// outcomeWords are the errno and fault options in file form.
func (r *Rule) outcomeWords() []string {
	var w []string
	if r.blackhole {
		w = append(w, "blackhole")
	} else if r.action == Fail || (r.action == Deny && r.errno != syscall.EPERM) {
		w = append(w, "errno="+ErrnoName(r.errno))
	}
	return append(w, r.optionWords()...)
}

func (r *Rule) optionWords() []string {
	var w []string
	if r.whenSet {
		w = append(w, "when="+r.formatWhen())
	}
	if r.probSet {
		w = append(w, "probability="+strconv.FormatFloat(r.prob, 'g', -1, 64))
	}
	if r.delay > 0 {
		w = append(w, "delay="+r.delay.String())
	}
	if r.timeout > 0 {
		w = append(w, "timeout="+r.timeout.String())
	}
	if r.winAfter > 0 {
		w = append(w, "after="+r.winAfter.String())
	}
	if r.winEvery > 0 {
		w = append(w, "every="+r.winEvery.String())
	}
	if r.winFor > 0 {
		w = append(w, "for="+r.winFor.String())
	}
	return w
}

func (r *Rule) formatWhen() string {
	s := strconv.FormatUint(r.whenFirst, 10)
	switch {
	case r.whenLast == r.whenFirst:
		return s
	case r.whenLast != 0:
		s += ".." + strconv.FormatUint(r.whenLast, 10)
	}
	if r.whenStep != 1 || r.whenLast == 0 {
		if r.whenStep == 1 {
			return s + "+"
		}
		s += "+" + strconv.FormatUint(r.whenStep, 10)
	}
	return s
}

// Compact returns the rule as a command-line flag (`--deny
// 127.0.0.1:80=ECONNREFUSED`), or "" when the compact form cannot express it
// (several addresses, exe=, uid=).
func (r *Rule) Compact() string {
	var b strings.Builder
	b.WriteString("--")
	if r.isDefault {
		b.WriteString("default ")
		b.WriteString(r.action.String())
	} else {
		b.WriteString(r.action.String())
		b.WriteByte(' ')
		if r.exe != nil || r.uidSet {
			return ""
		}
		switch r.scope {
		case scopeAll:
			b.WriteString("any")
		case scopeInet:
			if len(r.prefixes)+len(r.hosts)+len(r.wild)+len(r.groups) > 1 || r.allowPrivate {
				return ""
			}
			if r.proto != protoAny {
				b.WriteString(r.proto.String())
				b.WriteByte(':')
			}
			switch {
			case len(r.prefixes) == 1:
				b.WriteString(formatPrefix(r.prefixes[0], true))
			case len(r.hosts) == 1:
				b.WriteString(r.hosts[0])
			case len(r.wild) == 1:
				b.WriteString("*" + r.wild[0])
			case len(r.groups) == 1:
				b.WriteString(r.groups[0])
			default:
				b.WriteString("*")
			}
			if len(r.ports) > 0 {
				b.WriteByte(':')
				b.WriteString(formatPorts(r.ports))
			}
		case scopeUnix:
			b.WriteString("unix")
			switch r.unix {
			case unixPath:
				if strings.ContainsAny(r.glob.src, "= ") || strings.Contains(r.glob.src, ":") {
					return ""
				}
				b.WriteString(":" + r.glob.src)
			case unixAbstract:
				if strings.ContainsAny(r.glob.src, "= ") || strings.Contains(r.glob.src, ":") {
					return ""
				}
				b.WriteString(":@" + r.glob.src)
			case unixUnnamed:
				b.WriteString(":unnamed")
			}
		case scopeFamily:
			b.WriteString(familyName(r.family))
		}
	}
	switch {
	case r.blackhole:
		b.WriteString("=blackhole")
	case r.action == Fail || (r.action == Deny && r.errno != syscall.EPERM):
		b.WriteString("=" + ErrnoName(r.errno))
	}
	if opts := r.optionWords(); len(opts) > 0 {
		b.WriteByte(':')
		b.WriteString(strings.Join(opts, ","))
	}
	return b.String()
}

// formatPrefix writes a single address without /32 or /128, and an IPv6
// one in brackets when bracket is set (always in the long form, and in the
// compact form when a port follows).
func formatPrefix(p netip.Prefix, bracket bool) string {
	var s string
	if p.IsSingleIP() {
		s = p.Addr().String()
	} else {
		s = p.String()
	}
	if p.Addr().Is6() && bracket {
		return "[" + s + "]"
	}
	return s
}

func formatPorts(ps []portRange) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(p.lo)))
		if p.hi != p.lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(p.hi)))
		}
	}
	return b.String()
}

func formatUID(lo, hi uint32) string {
	if lo == hi {
		return strconv.FormatUint(uint64(lo), 10)
	}
	return strconv.FormatUint(uint64(lo), 10) + "-" + strconv.FormatUint(uint64(hi), 10)
}

// String returns "allow", "deny", "log" or "fail".
func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Log:
		return "log"
	case Fail:
		return "fail"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}
