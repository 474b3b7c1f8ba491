package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Warnings returns what `connvisor check` should tell about a policy that
// loads but is probably not what its author meant: rules that can never
// match because an earlier rule covers them, host names that did not
// resolve, and a default of allow combined with deny rules on host names
// (a name that moves to new addresses bypasses them until re-resolved).
// They are computed on the first call, so that loading stays fast.
func (p *Policy) Warnings() []string {
	p.warnOnce.Do(func() {
		w := slices.Clone(p.loadWarnings)
		for _, r := range p.rules {
			for _, cidr := range r.hostBits {
				pfx, _ := netip.ParsePrefix(cidr)
				w = append(w, fmt.Sprintf("%s: %s has host bits set and matches the whole network %s; write %s, or %s for the one address",
					r.Origin(), cidr, pfx.Masked(), pfx.Masked(), netip.PrefixFrom(pfx.Addr(), pfx.Addr().BitLen())))
			}
		}
		w = append(w, p.shadowWarnings()...)
		if p.def.Action == Allow || p.def.Action == Log {
			for _, r := range p.rules {
				if r.hasNames() && (r.action == Deny || r.action == Fail) {
					names := append(slices.Clone(r.hosts), r.wildNames()...)
					w = append(w, fmt.Sprintf("%s: default %s combined with %s on host names (%s): a connect to an address no DNS answer of the program explains (hard-coded, resolved over DNS over TLS/HTTPS, or any new address when connvisor cannot capture DNS answers) is allowed; prefer default deny with allow rules",
						r.Origin(), p.def.Action, r.action, strings.Join(names, ", ")))
				}
			}
		}
		p.warnings = w
	})
	return slices.Clone(p.warnings)
}

// shadowWarnings finds rules covered by an earlier rule that always
// decides. Candidates come from the index (the rules on the prefixes that
// contain the rule's first prefix), so this is not quadratic for large
// CIDR policies.
func (p *Policy) shadowWarnings() []string {
	var out []string
	for j, b := range p.rules {
		best := -1
		consider := func(list []int32) {
			for _, i := range list {
				if int(i) >= j || (best >= 0 && int(i) >= best) {
					break
				}
				if covers(p.rules[i], b) {
					best = int(i)
					break
				}
			}
		}
		switch b.scope {
		case scopeInet:
			bs := b.addrSet()
			if len(bs) == 0 {
				continue
			}
			t := &p.idx.v6
			if bs[0].Addr().Is4() {
				t = &p.idx.v4
			}
			for n := t.lookup(key(bs[0].Addr())); n >= 0; n = t.nodes[n].parent {
				if t.nodes[n].prefix.Bits() <= bs[0].Bits() {
					consider(t.nodes[n].rules)
				}
			}
			consider(p.idx.all)
		case scopeUnix:
			consider(p.idx.unix)
			consider(p.idx.all)
		case scopeFamily:
			consider(p.idx.family)
			consider(p.idx.all)
		case scopeAll:
			consider(p.idx.all)
		}
		if best >= 0 {
			a := p.rules[best]
			out = append(out, fmt.Sprintf("%s: rule `%s` can never match: covered by %s `%s`", b.Origin(), b, a.Origin(), a))
		}
	}
	return out
}

// addrSet is the prefixes an inet rule matches (every address for none).
func (r *Rule) addrSet() []netip.Prefix {
	if r.everyAddr() {
		return []netip.Prefix{
			netip.PrefixFrom(netip.IPv4Unspecified(), 0),
			netip.PrefixFrom(netip.IPv6Unspecified(), 0),
		}
	}
	return append(append(slices.Clone(r.prefixes), r.groupPfx...), r.resolved...)
}

// covers reports whether every connect b matches is decided by a first.
// It may say no when unsure (it is for warnings only), never yes wrongly.
func covers(a, b *Rule) bool {
	if a.hasSchedule() {
		return false // a fault rule may let connects fall through
	}
	if a.hasNames() || b.hasNames() {
		return false // names match through DNS answers no analysis can foresee
	}
	if a.exe != nil && (b.exe == nil || !a.exe.covers(b.exe)) {
		return false
	}
	if a.uidSet && (!b.uidSet || b.uidLo < a.uidLo || b.uidHi > a.uidHi) {
		return false
	}
	if a.scope == scopeAll {
		return b.scope != scopeFamily || b.family != 0 // AF_UNSPEC is not in "any"
	}
	if a.scope != b.scope {
		return false
	}
	switch a.scope {
	case scopeFamily:
		return a.family == b.family
	case scopeUnix:
		switch {
		case a.unix == unixAny:
			return true
		case a.unix != b.unix:
			return false
		case a.unix == unixUnnamed:
			return true
		}
		return a.glob.covers(b.glob)
	}
	if a.proto != protoAny && a.proto != b.proto {
		return false
	}
	if len(a.ports) > 0 {
		if len(b.ports) == 0 {
			return false
		}
		for _, bp := range b.ports {
			if !slices.ContainsFunc(a.ports, func(ap portRange) bool { return ap.lo <= bp.lo && bp.hi <= ap.hi }) {
				return false
			}
		}
	}
	as, bs := a.addrSet(), b.addrSet()
	if len(bs) == 0 {
		return false
	}
	for _, bp := range bs {
		if !slices.ContainsFunc(as, func(ap netip.Prefix) bool { return ap.Bits() <= bp.Bits() && ap.Contains(bp.Addr()) }) {
			return false
		}
	}
	return true
}
