package policy

import (
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Host names learned from DNS answers.
//
// A rule's names (exact, and wildcards `*.example.com`) match a connect in
// one of two ways. When the supervisor knows names that resolved to the
// destination for this tree (from the tree's own DNS answers, within TTL
// plus the grace period), DecideNamed matches the rule's names against
// them, and the addresses resolved at load do not count: an address is
// then allowed by a name only if a name the program asked for says so.
// When no answer explains the address (no names), the addresses resolved
// at load (and at each `resolve every`) match, as before.

// DefaultNameGrace is how long a learned mapping outlives its TTL: programs
// cache answers past their TTL (glibc's nscd, Go's net.Dialer happy-eyeballs
// fallbacks, connection pools), and a name may be dialled again a little
// later without a new query.
const DefaultNameGrace = 60 * time.Second

// maxNameGrace bounds `dns grace`: the learned table keeps expired mappings
// this long at most (dnsnames.SweepAfter).
const maxNameGrace = 10 * time.Minute

// HostVia says how a decision's Host was found.
type HostVia uint8

const (
	ViaNone   HostVia = iota
	ViaAnswer         // a DNS answer the tree received named the address
	ViaLoad           // the name resolved to the address when the policy loaded
)

func (v HostVia) String() string {
	switch v {
	case ViaAnswer:
		return "dns"
	case ViaLoad:
		return "load"
	}
	return ""
}

// Address groups, usable wherever an address is.
var (
	groupLoopback = []netip.Prefix{pfx("127.0.0.0/8"), pfx("::1/128")}
	groupPrivate  = []netip.Prefix{pfx("10.0.0.0/8"), pfx("172.16.0.0/12"), pfx("192.168.0.0/16"), pfx("fc00::/7")}
	groupLinkLoc  = []netip.Prefix{pfx("169.254.0.0/16"), pfx("fe80::/10")}
	groupMetadata = []netip.Prefix{pfx("169.254.169.254/32"), pfx("fd00:ec2::254/128")}
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// addrGroup returns the prefixes of a group name.
func addrGroup(name string) ([]netip.Prefix, bool) {
	switch name {
	case "loopback":
		return groupLoopback, true
	case "private":
		return groupPrivate, true
	case "link-local":
		return groupLinkLoc, true
	case "metadata":
		return groupMetadata, true
	case "public":
		var local []netip.Prefix
		local = append(local, groupLoopback...)
		local = append(local, groupPrivate...)
		local = append(local, groupLinkLoc...)
		out := complement(netip.MustParsePrefix("0.0.0.0/0"), local)
		return append(out, complement(netip.MustParsePrefix("::/0"), local)...), true
	}
	return nil, false
}

// complement returns prefixes covering what of p no prefix of excl covers.
func complement(p netip.Prefix, excl []netip.Prefix) []netip.Prefix {
	overlaps := false
	for _, e := range excl {
		if e.Addr().Is4() != p.Addr().Is4() {
			continue
		}
		if e.Bits() <= p.Bits() && e.Contains(p.Addr()) {
			return nil // p lies inside e
		}
		if p.Overlaps(e) {
			overlaps = true
		}
	}
	if !overlaps {
		return []netip.Prefix{p}
	}
	// Split p into its two halves.
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	b := p.Addr().AsSlice()
	bit := p.Bits()
	b[bit/8] |= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	hi := netip.PrefixFrom(a, p.Bits()+1)
	return append(complement(lo, excl), complement(hi, excl)...)
}

// Rebindable reports whether a name's answer with this address is a DNS
// rebinding candidate: loopback, private (RFC 1918, ULA), link-local
// (metadata included), or unspecified. A host-name rule allows such an
// address only with allow-private.
func Rebindable(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified()
}

// hasNames reports whether the rule matches by host name.
func (r *Rule) hasNames() bool { return len(r.hosts) > 0 || len(r.wild) > 0 }

// wildNames returns the wildcards as written (*.example.com).
func (r *Rule) wildNames() []string {
	out := make([]string, len(r.wild))
	for i, w := range r.wild {
		out[i] = "*" + w
	}
	return out
}

// everyAddr reports whether an inet rule names no address at all.
func (r *Rule) everyAddr() bool {
	return len(r.prefixes) == 0 && len(r.groupPfx) == 0 && !r.hasNames()
}

// nameMatch returns the index in names of the first name the rule's host
// names match, or -1. A rule without allow-private matches no name for an
// address a rebinding attack would aim at.
func (r *Rule) nameMatch(names []string, a netip.Addr) int {
	if !r.allowPrivate && Rebindable(a) {
		return -1
	}
	for i, n := range names {
		for _, h := range r.names {
			if n == h {
				return i
			}
		}
		for _, w := range r.wild {
			// w is ".example.com": one or more labels before it, not
			// the apex itself.
			if len(n) > len(w) && strings.HasSuffix(n, w) {
				return i
			}
		}
	}
	return -1
}

// loadHost returns the rule's host name whose load-time addresses hold a.
func (r *Rule) loadHost(a netip.Addr) string {
	a = a.Unmap()
	for j, as := range r.hostAddrs {
		for _, x := range as {
			if x == a {
				return r.names[j]
			}
		}
	}
	return ""
}

// canonicalName is a host name as rules and answers compare it.
func canonicalName(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// IsHostName reports whether a rule can name h (canonical) as a host: it
// reads as a host name, not as an address, and has a dot, so that no
// keyword, address group or family name reads the same (connvisor learn
// writes the names of DNS answers into rules, and falls back to the
// address for a name a rule could not hold).
func IsHostName(h string) bool {
	if strings.HasSuffix(h, ".") || !strings.Contains(h, ".") || looksNumeric(h) || checkHostName(h) != nil {
		return false
	}
	_, err := parseAddrOrPrefix(h)
	return err != nil
}

// UsesNames reports whether a rule matches by host name, so the supervisor
// should learn names from the tree's DNS answers and pass them to
// DecideNamed.
func (p *Policy) UsesNames() bool { return p.usesNames }

// NameGrace is how long a learned mapping counts past its TTL (`dns grace`).
func (p *Policy) NameGrace() time.Duration { return p.grace }

// DecideNamed is Decide for a destination whose address the tree's own DNS
// answers named: names are those names (canonical: lower case, no
// trailing dot), empty when no answer explains the address. A rule's host
// names match through names when there are any, else through the
// addresses resolved at load. The decision's Host says which name
// explains the address, and HostVia how it was found. Like Decide it
// changes nothing: a pending decision is settled by Count, given the same
// names.
func (p *Policy) DecideNamed(d *Dest, names []string) Decision {
	if len(p.resolverRules) > 0 && d.Family == syscall.AF_UNIX && !d.Abstract && !d.Unnamed {
		for _, r := range p.resolverRules {
			if r.matches(d) {
				return p.audited(r.decision)
			}
		}
	}
	return p.decideAfter(d, names, -1, p.clock())
}

// Count takes the step Decide leaves out, once per connect, where the
// connect is performed: when dec (Decide's or DecideNamed's answer for
// d and names) is pending on a fault rule's schedule, it counts the
// match and returns the fault if the schedule fires, else what the rules
// after it decide (counting the next schedule that matches, in turn). A
// decision that is not pending comes back as it is. Counting is atomic:
// connects counted at once from many goroutines each get their own
// place in the schedule.
func (p *Policy) Count(d *Dest, names []string, dec Decision) Decision {
	if dec.pending == nil {
		return dec
	}
	now := p.clock()
	for dec.pending != nil {
		at := dec.pendingAt
		if at < 0 || int(at) >= len(p.rules) || p.rules[at] != dec.pending {
			// Decided by another version of the policy: decide again here.
			dec = p.DecideNamed(d, names)
			continue
		}
		if dec.pending.take(p.seed) {
			dec.pending = nil
			return dec
		}
		dec = p.decideAfter(d, names, at, now)
	}
	return dec
}

// clock is the time that windows of fail rules are checked against, in
// Unix nanoseconds; 0 when no rule has a window (the clock is not read).
func (p *Policy) clock() int64 {
	if !p.timed {
		return 0
	}
	return p.now().UnixNano()
}

// decideAfter decides d on the rules after rule number after (-1: all of
// them). A fault rule outside its time window is passed over; one with a
// schedule gives its decision pending on the count.
func (p *Policy) decideAfter(d *Dest, names []string, after int32, now int64) Decision {
	for {
		i := p.findNamed(d, after, names)
		if i == noRule {
			if NotEgress(d) {
				return Decision{Action: Allow}
			}
			dec := p.audited(p.def)
			if len(names) > 0 {
				dec.Host, dec.HostVia = names[0], ViaAnswer
			}
			return dec
		}
		r := p.rules[i]
		if r.winSet && !r.inWindow(now) {
			after = i
			continue
		}
		dec := p.audited(r.decision)
		switch {
		case len(names) > 0:
			dec.Host, dec.HostVia = names[0], ViaAnswer
			if k := r.nameMatch(names, d.Addr); k >= 0 && r.hasNames() {
				dec.Host = names[k]
			}
		case r.hasNames() && d.Addr.IsValid():
			if h := r.loadHost(d.Addr); h != "" {
				dec.Host, dec.HostVia = h, ViaLoad
			}
		}
		if r.hasSchedule() {
			dec.pending, dec.pendingAt = r, i
		}
		return dec
	}
}

// resolverSockets are the UNIX sockets through which the C library asks a
// daemon (nscd, systemd-resolved's varlink API) for names: their answers
// never cross a socket connvisor can read, so a policy with host names
// refuses them the way a missing daemon does (ENOENT), and the C library
// falls back to DNS itself (glibc: nss_dns after nscd and nss-resolve).
var resolverSockets = []string{"/run/nscd/socket", "/var/run/nscd/socket", "/run/systemd/resolve/io.systemd.Resolve"}

// resolverRules are the rules a policy with host names applies before its
// own (they are not in Rules: `connvisor explain` shows them deciding).
func resolverRules() []*Rule {
	var out []*Rule
	for _, path := range resolverSockets {
		g, err := compileGlob(path, false)
		if err != nil {
			panic("policy: resolver socket glob: " + err.Error())
		}
		r := &Rule{action: Deny, errno: syscall.ENOENT, scope: scopeUnix, unix: unixPath, glob: g,
			flag: "(host names: resolver daemons refused)", src: "deny unix " + path + " errno=ENOENT"}
		r.decision = Decision{Action: Deny, Errno: syscall.ENOENT, Rule: r}
		out = append(out, r)
	}
	return out
}
