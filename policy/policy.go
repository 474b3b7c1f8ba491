package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options are what Load needs from the world. The package makes no system
// call itself; everything that touches the outside comes through here.
type Options struct {
	// Resolve looks up a host name (all A and AAAA records). nil: rules
	// with host names are an error.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Seed for probability= rules; nil: one is chosen from Now and
	// reported by Policy.Seed, so that a run can be replayed.
	Seed *int64
	// ReadFile reads the policy file and its includes (cmd passes
	// os.ReadFile). nil: loading a file is an error.
	ReadFile func(path string) ([]byte, error)
	// Context bounds name resolution; nil: context.Background().
	Context context.Context
	// Now is the policy's clock: it chooses a seed when none is given, and
	// times the windows of fail rules (after=, for=, every=). nil:
	// time.Now. Tests pass a fake clock to step through windows.
	Now func() time.Time
	// Audit puts the policy in audit mode whatever its file says (`run
	// --audit`): see Policy.Audit.
	Audit bool
}

// FlagRule is a rule given on the command line. Flag is "allow", "deny",
// "fail", "log" or "default"; Value is the flag's value as typed.
type FlagRule struct{ Flag, Value string }

// Policy is a loaded, immutable set of rules. Decide and Count may be
// called from many goroutines at once; the only state that changes is the
// match counter of fault rules, which Count advances atomically.
type Policy struct {
	rules    []*Rule
	def      Decision
	defRule  *Rule // the `default` line, nil when implicit
	seed     int64
	needsExe bool
	needsUID bool
	interval time.Duration
	audit    bool // see Audit
	idx      index
	resolve  func(ctx context.Context, host string) ([]netip.Addr, error)
	nextID   uint64 // id of the next rule added by Prepend
	now      func() time.Time
	timed    bool // a rule has a time window: Decide reads the clock

	usesNames bool // a rule matches by host name
	// resolverRules refuse the name daemons' sockets when usesNames.
	resolverRules []*Rule
	grace         time.Duration // learned mappings count this long past their TTL
	allowsAll     bool          // see AllowsEverything; asked on every trapped call
	loadWarnings  []string      // found while loading (names that did not resolve)
	warnOnce      sync.Once     // shadow analysis is quadratic-ish: only on demand
	warnings      []string
}

// defaultText is the embedded default: local IPC and loopback work,
// everything else is denied.
const defaultText = `# connvisor's embedded default policy
allow any 127.0.0.0/8   # IPv4-mapped loopback (::ffff:127.0.0.0/104) matches too
allow any [::1]
allow unix              # paths, abstract names and unnamed sockets
default deny errno=EPERM
`

// Default returns the embedded default policy: loopback (127.0.0.0/8, ::1,
// IPv4-mapped loopback) and every AF_UNIX destination allowed, AF_UNSPEC
// allowed, everything else denied with EPERM.
func Default() *Policy {
	p, err := Load(nil, "", Options{})
	if err != nil {
		panic("policy: embedded default does not load: " + err.Error())
	}
	return p
}

// Load builds a policy from command-line rules and a policy file (""
// for none). Flag rules come first, in order, then the file's. Without a
// file, the flag rules come before the embedded default's rules (so local
// IPC keeps working), unless a --default flag is given: an explicit
// default replaces the embedded policy entirely, so that `--default deny
// --allow 10.0.0.1:443` allows that one destination and nothing on
// loopback. Every problem found is returned, joined; a policy with an
// error is never returned.
func Load(flags []FlagRule, file string, opts Options) (*Policy, error) {
	l := &loader{opts: opts, grace: DefaultNameGrace}
	for _, f := range flags {
		l.flag(f)
	}
	if file != "" {
		if opts.ReadFile == nil {
			l.addErr(fmt.Errorf("policy %s: no file reader (Options.ReadFile is nil)", file))
		} else {
			l.file(file, where{})
		}
	} else if l.flagDef == nil {
		l.text("default", []byte(defaultText), true)
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	def := l.def
	if l.flagDef != nil {
		if l.def != nil && !l.def.def {
			l.warnings = append(l.warnings, fmt.Sprintf("%s: default %s is replaced by %s", l.def.Origin(), l.def.action, l.flagDef.Compact()))
		}
		def = l.flagDef
	}
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if err := l.resolveAll(ctx); err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	var seed int64
	if opts.Seed != nil {
		seed = *opts.Seed
	} else {
		// 31 bits: short enough to type back as --seed.
		seed = int64(splitmix(uint64(now().UnixNano())) >> 33)
	}
	start := now().UnixNano()
	for i, r := range l.rules {
		r.id = uint64(i)
		r.startClock(start)
	}
	p := build(l.rules, def, seed, l.interval, opts.Resolve, l.warnings, now)
	p.nextID = uint64(len(l.rules))
	p.audit = opts.Audit || l.audit
	p.grace = l.grace
	return p, nil
}

// build makes a policy of rules (numbered in this order) and derives the
// index and summary flags.
func build(rules []*Rule, def *Rule, seed int64, interval time.Duration,
	resolve func(context.Context, string) ([]netip.Addr, error), warnings []string, now func() time.Time) *Policy {
	p := &Policy{
		now:          now,
		rules:        rules,
		defRule:      def,
		seed:         seed,
		interval:     interval,
		resolve:      resolve,
		loadWarnings: warnings,
		def:          Decision{Action: Deny, Errno: syscall.EPERM},
		grace:        DefaultNameGrace,
	}
	if def != nil {
		p.def = def.decision
		p.def.Rule = nil
	}
	for _, r := range rules {
		p.needsExe = p.needsExe || r.exe != nil
		p.needsUID = p.needsUID || r.uidSet
		p.timed = p.timed || r.winSet
		p.usesNames = p.usesNames || r.hasNames()
		if r.id >= p.nextID {
			p.nextID = r.id + 1
		}
	}
	p.idx = newIndex(rules)
	if p.usesNames {
		p.resolverRules = resolverRules()
	}
	p.allowsAll = p.computeAllowsEverything()
	return p
}

// NotEgress reports whether d reaches nothing outside the host, so no
// default denies it: AF_UNSPEC (a dissolve) and netlink to the kernel.
func NotEgress(d *Dest) bool {
	return d.Family == syscall.AF_UNSPEC || d.Family == syscall.AF_NETLINK && d.Kernel
}

// Decide returns what to do with a connect to d: the first rule that
// matches, else the default. Two destinations are not egress, so the
// default never denies them: AF_UNSPEC (which dissolves a datagram
// association) and a netlink message to the kernel (routing and interface
// queries; getifaddrs needs them). A rule that names them still applies.
//
// Decide is pure: it changes nothing and allocates nothing, so it can be
// asked again, or in advance, without consequence. A fault rule with a
// schedule (when=, probability=, or a time window) answers only some of
// the connects that match it, so its decision comes back Pending: the
// connect has not been counted yet. Count counts it, where the connect is
// performed, and settles the decision: the fault when the schedule fires,
// else what the rules after it say.
//
// Host names match through the addresses they resolved to at load;
// DecideNamed matches them through the names the tree's DNS answers gave.
func (p *Policy) Decide(d *Dest) Decision { return p.DecideNamed(d, nil) }

// audited turns a deny or fault into an allow that says what it would
// have been, when the policy is in audit mode. Allow, log and delays of
// allow rules stay as they are; a fault's delay goes (nothing is injected).
func (p *Policy) audited(d Decision) Decision {
	if !p.audit || (d.Action != Deny && d.Action != Fail) {
		return d
	}
	return Decision{Action: Allow, Rule: d.Rule, WouldDeny: true, WouldErrno: d.Errno}
}

// Audit reports whether the policy is in audit mode (`mode audit` in the
// file, or Options.Audit): every connect that a deny or fail rule, or the
// default, would refuse is allowed instead, and its decision says what
// would have happened (Decision.WouldDeny). Nothing else changes: the
// policy is not an allow-all one (AllowsEverything is computed from the
// rules as written), so every call is still decided and performed by the
// supervisor, and every side door stays closed.
func (p *Policy) Audit() bool { return p.audit }

// Permits reports whether the policy, enforced, lets a connect to d
// through: the first rule that matches allows or logs it, or none matches
// and the default allows it. by is the rule that decided (nil: the
// default, or d is not egress). A fault rule with a schedule (when=,
// probability=) is passed over, as most connects fall through it; one
// without a schedule refuses. Unlike Decide it counts nothing and ignores
// audit mode, so it can be asked about any destination at any time
// (connvisor learn --merge asks which destinations a policy lacks).
func (p *Policy) Permits(d *Dest) (ok bool, by *Rule) { return p.PermitsNamed(d, nil) }

// PermitsNamed is Permits for a destination whose address the tree's own
// DNS answers named, matching host-name rules as DecideNamed does: names
// are those names (canonical), empty when no answer explains the address.
func (p *Policy) PermitsNamed(d *Dest, names []string) (ok bool, by *Rule) {
	after := int32(-1)
	for {
		i := p.findNamed(d, after, names)
		if i == noRule {
			return NotEgress(d) || p.def.Action == Allow || p.def.Action == Log, nil
		}
		r := p.rules[i]
		switch {
		case r.action == Allow || r.action == Log:
			return true, r
		case r.action == Fail && r.hasSchedule():
			after = i
			continue
		}
		return false, r
	}
}

// NeedsExe reports whether a rule matches on exe=, so the supervisor must
// fill Dest.Exe.
func (p *Policy) NeedsExe() bool { return p.needsExe }

// NeedsUID reports whether a rule matches on uid=.
func (p *Policy) NeedsUID() bool { return p.needsUID }

// Seed returns the seed of probability= rules (given or chosen).
func (p *Policy) Seed() int64 { return p.seed }

// UsesProbability reports whether a rule fires with a probability=, the
// only thing the seed changes.
func (p *Policy) UsesProbability() bool {
	return slices.ContainsFunc(p.rules, (*Rule).HasProbability)
}

// Rules returns the rules in decision order.
func (p *Policy) Rules() []*Rule { return slices.Clone(p.rules) }

// DefaultDecision is what a connect that matches no rule gets.
func (p *Policy) DefaultDecision() Decision { return p.def }

// DefaultRule returns the `default` line in force, nil when the default is
// implicit (deny with EPERM).
func (p *Policy) DefaultRule() *Rule { return p.defRule }

// ResolveInterval is how often host names should be re-resolved (`resolve
// every 5m`); 0: never.
func (p *Policy) ResolveInterval() time.Duration { return p.interval }

// Prepend returns a policy with rules from flags in front of p's. The
// existing rules are shared, counters included, so a schedule keeps
// counting across the change ("fail the next 3 connects to X now" does not
// restart the others). A --default flag replaces the default.
func (p *Policy) Prepend(flags ...FlagRule) (*Policy, error) {
	l := &loader{opts: Options{Resolve: p.resolve, Now: p.now}}
	for _, f := range flags {
		l.flag(f)
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	if err := l.resolveAll(context.Background()); err != nil {
		return nil, err
	}
	id := p.nextID
	start := p.now().UnixNano()
	for _, r := range l.rules {
		r.id = id
		id++
		r.startClock(start)
	}
	def := p.defRule
	if l.flagDef != nil {
		def = l.flagDef
	}
	rules := append(l.rules, p.rules...)
	np := build(rules, def, p.seed, p.interval, p.resolve, append(slices.Clone(p.loadWarnings), l.warnings...), p.now)
	if def == nil {
		np.def = p.def
	}
	np.audit = p.audit
	np.grace = p.grace
	return np, nil
}

// Reresolve returns the same policy with host names looked up again, and a
// line for each name whose addresses changed. A name that fails to resolve
// keeps its previous addresses (a DNS hiccup must not open or close
// anything), and is reported in changes. Rules without names are shared;
// rules with names are copied but keep their fault counters.
func (p *Policy) Reresolve(ctx context.Context, opts Options) (*Policy, []string, error) {
	resolve := opts.Resolve
	if resolve == nil {
		resolve = p.resolve
	}
	if resolve == nil {
		for _, r := range p.rules {
			if len(r.hosts) > 0 {
				return nil, nil, fmt.Errorf("re-resolve %s: host names need a resolver", r.Origin())
			}
		}
		return p, nil, nil
	}
	var changes []string
	seen := map[string]bool{}
	cache := map[string]hostResult{}
	rules := make([]*Rule, len(p.rules))
	for i, r := range p.rules {
		if len(r.hosts) == 0 {
			rules[i] = r
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("re-resolve host names: %w", err)
		}
		nr := *r
		nr.decision.Rule = &nr
		nr.hostAddrs = make([][]netip.Addr, len(r.hosts))
		for j, h := range r.hosts {
			res, ok := cache[h]
			if !ok {
				addrs, err := resolve(ctx, h)
				res = hostResult{normAddrs(addrs), err}
				cache[h] = res
			}
			old := r.hostAddrs[j]
			if res.err != nil {
				nr.hostAddrs[j] = old
				if !seen[h] {
					changes = append(changes, fmt.Sprintf("%s (%s): lookup failed, keeping %s: %v", h, r.Origin(), fmtAddrs(old), res.err))
				}
			} else {
				nr.hostAddrs[j] = res.addrs
				if !slices.Equal(old, res.addrs) && !seen[h] {
					changes = append(changes, fmt.Sprintf("%s (%s): %s -> %s", h, r.Origin(), fmtAddrs(old), fmtAddrs(res.addrs)))
				}
			}
			seen[h] = true
		}
		nr.resolved = hostPrefixes(nr.hostAddrs)
		rules[i] = &nr
	}
	np := build(rules, p.defRule, p.seed, p.interval, resolve, p.loadWarnings, p.now)
	np.def = p.def
	np.audit = p.audit
	np.grace = p.grace
	return np, changes, nil
}

type hostResult struct {
	addrs []netip.Addr
	err   error
}

// normAddrs unmaps, sorts and deduplicates, so that address sets compare
// equal whatever order DNS returned them in.
func normAddrs(as []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if a.IsValid() {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

func hostPrefixes(sets [][]netip.Addr) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range sets {
		for _, a := range s {
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return ps
}

func fmtAddrs(as []netip.Addr) string {
	if len(as) == 0 {
		return "[]"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

// AllowsEverything reports whether every destination, for every process,
// is allowed at once: the default allows without delay and every rule is
// a plain allow. Then no decision depends on what a call names, and the
// supervisor may let the kernel run the call itself.
func (p *Policy) AllowsEverything() bool { return p.allowsAll }

func (p *Policy) computeAllowsEverything() bool {
	if p.def.Action != Allow || p.def.Delay != 0 {
		return false
	}
	for _, r := range p.rules {
		if d := r.Decision(); d.Action != Allow || d.Delay != 0 {
			return false
		}
	}
	return true
}
