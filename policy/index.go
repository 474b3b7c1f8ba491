package policy

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"syscall"
)

// index finds, for a destination, the lowest-numbered rule that matches it
// after a given one, without looking at rules that cannot.
//
// IP rules live in one table per family. A table cuts the address space
// into intervals at every prefix boundary; each interval points at the
// longest prefix that covers it, and each prefix at the next shorter one
// that contains it. A lookup is a binary search over the intervals, then a
// walk up at most 33 (IPv4) or 129 (IPv6) prefixes, each holding the sorted
// numbers of the rules written for it. So a lookup costs O(log n) plus the
// rules that share the destination's prefixes, whatever the policy's size.
type index struct {
	v4, v6 ipTable
	// hv4, hv6 hold the addresses host names resolved to at load: they
	// count only for an address no DNS answer of the tree explains.
	hv4, hv6 ipTable
	named    []int32 // rules with host names, matched through learned names
	all      []int32 // rules for every family but AF_UNSPEC (no destination matcher)
	unix     []int32
	family   []int32 // rules naming another family, AF_UNSPEC included
}

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a u128) cmp(b u128) int {
	if a.hi != b.hi {
		return cmp.Compare(a.hi, b.hi)
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) inc() (u128, bool) {
	if a.lo != math.MaxUint64 {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != math.MaxUint64 {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

// key places an address (already unmapped) in its table's number space.
func key(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var k u128
	for i := 0; i < 8; i++ {
		k.hi = k.hi<<8 | uint64(b[i])
		k.lo = k.lo<<8 | uint64(b[8+i])
	}
	return k
}

// span returns the first and last key of a (masked) prefix.
func span(p netip.Prefix) (u128, u128) {
	start := key(p.Addr())
	host := p.Addr().BitLen() - p.Bits() // bits below the prefix
	end := start
	switch {
	case host >= 64:
		end.lo = math.MaxUint64
		if host > 64 {
			end.hi |= math.MaxUint64 >> (128 - host)
		}
	case host > 0:
		end.lo |= math.MaxUint64 >> (64 - host)
	}
	return start, end
}

type ipTable struct {
	starts []u128  // interval i covers [starts[i], starts[i+1])
	node   []int32 // deepest prefix covering interval i, -1 for none
	nodes  []ipNode
}

type ipNode struct {
	prefix netip.Prefix
	parent int32   // next shorter prefix containing this one, -1 for none
	rules  []int32 // ascending
	pre    []prefilter
}

// prefilter is what a node keeps of each of its rules, so that the rules a
// destination's port or protocol rules out are skipped without touching the
// rule itself (a cache miss each, in a large policy).
type prefilter struct {
	lo, hi uint16 // the rule's ports lie within lo..hi
	st     int8   // socket type the rule needs, -1 for any
}

func newPrefilter(r *Rule) prefilter {
	f := prefilter{lo: 0, hi: math.MaxUint16, st: -1}
	if len(r.ports) > 0 {
		f.lo, f.hi = r.ports[0].lo, r.ports[len(r.ports)-1].hi
	}
	switch r.proto {
	case protoTCP:
		f.st = syscall.SOCK_STREAM
	case protoUDP:
		f.st = syscall.SOCK_DGRAM
	}
	return f
}

// buildTable makes a table from prefixes and the rule numbers for each.
func buildTable(byPrefix map[netip.Prefix][]int32, rules []*Rule) ipTable {
	type pr struct {
		p          netip.Prefix
		start, end u128
	}
	ps := make([]pr, 0, len(byPrefix))
	for p := range byPrefix {
		s, e := span(p)
		ps = append(ps, pr{p, s, e})
	}
	// Start ascending, then longest span first, so containers come
	// before what they contain.
	slices.SortFunc(ps, func(a, b pr) int {
		if c := a.start.cmp(b.start); c != 0 {
			return c
		}
		return b.end.cmp(a.end)
	})
	t := ipTable{nodes: make([]ipNode, len(ps))}
	emit := func(pos u128, n int32) {
		if k := len(t.starts) - 1; k >= 0 && t.starts[k] == pos {
			t.node[k] = n
			return
		}
		if k := len(t.node) - 1; k >= 0 && t.node[k] == n {
			return
		}
		t.starts = append(t.starts, pos)
		t.node = append(t.node, n)
	}
	emit(u128{}, -1)
	var stack []int32
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		next := int32(-1)
		if len(stack) > 0 {
			next = stack[len(stack)-1]
		}
		if after, ok := ps[top].end.inc(); ok {
			emit(after, next)
		}
	}
	for i, p := range ps {
		for len(stack) > 0 && ps[stack[len(stack)-1]].end.less(p.start) {
			pop()
		}
		parent := int32(-1)
		if len(stack) > 0 {
			parent = stack[len(stack)-1]
		}
		nums := slices.Clone(byPrefix[p.p])
		slices.Sort(nums)
		pre := make([]prefilter, len(nums))
		for k, ri := range nums {
			pre[k] = newPrefilter(rules[ri])
		}
		t.nodes[i] = ipNode{prefix: p.p, parent: parent, rules: nums, pre: pre}
		stack = append(stack, int32(i))
		emit(p.start, int32(i))
	}
	for len(stack) > 0 {
		pop()
	}
	return t
}

// lookup returns the deepest prefix node containing k, or -1.
func (t *ipTable) lookup(k u128) int32 {
	lo, hi := 0, len(t.starts) // invariant: starts[lo] <= k (starts[0] is 0), answer in [lo, hi)
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if k.less(t.starts[m]) {
			hi = m
		} else {
			lo = m
		}
	}
	if len(t.node) == 0 {
		return -1
	}
	return t.node[lo]
}

func newIndex(rules []*Rule) index {
	var ix index
	v4 := map[netip.Prefix][]int32{}
	v6 := map[netip.Prefix][]int32{}
	hv4 := map[netip.Prefix][]int32{}
	hv6 := map[netip.Prefix][]int32{}
	addTo := func(m4, m6 map[netip.Prefix][]int32, p netip.Prefix, i int32) {
		m := m6
		if p.Addr().Is4() {
			m = m4
		}
		if l := m[p]; len(l) == 0 || l[len(l)-1] != i {
			m[p] = append(l, i)
		}
	}
	add := func(p netip.Prefix, i int32) { addTo(v4, v6, p, i) }
	for n, r := range rules {
		i := int32(n)
		switch r.scope {
		case scopeAll:
			ix.all = append(ix.all, i)
		case scopeUnix:
			ix.unix = append(ix.unix, i)
		case scopeFamily:
			ix.family = append(ix.family, i)
		case scopeInet:
			if r.everyAddr() {
				add(netip.PrefixFrom(netip.IPv4Unspecified(), 0), i)
				add(netip.PrefixFrom(netip.IPv6Unspecified(), 0), i)
			}
			for _, p := range r.prefixes {
				add(p, i)
			}
			for _, p := range r.groupPfx {
				add(p, i)
			}
			for _, p := range r.resolved {
				addTo(hv4, hv6, p, i)
			}
			if r.hasNames() {
				ix.named = append(ix.named, i)
			}
		}
	}
	ix.v4 = buildTable(v4, rules)
	ix.v6 = buildTable(v6, rules)
	ix.hv4 = buildTable(hv4, rules)
	ix.hv6 = buildTable(hv6, rules)
	return ix
}

// noRule is larger than any rule number.
const noRule = math.MaxInt32

// find returns the number of the first rule after `after` that matches d,
// or noRule.
func (p *Policy) find(d *Dest, after int32) int32 { return p.findNamed(d, after, nil) }

// findNamed is find for a destination the names explain (see DecideNamed).
func (p *Policy) findNamed(d *Dest, after int32, names []string) int32 {
	best := int32(noRule)
	switch d.Family {
	case syscall.AF_INET, syscall.AF_INET6:
		if d.Addr.IsValid() {
			a := d.Addr.Unmap()
			t := &p.idx.v6
			if a.Is4() {
				t = &p.idx.v4
			}
			st := int8(d.SockType &^ (syscall.SOCK_NONBLOCK | syscall.SOCK_CLOEXEC))
			for n := t.lookup(key(a)); n >= 0; n = t.nodes[n].parent {
				best = p.firstInNode(&t.nodes[n], after, best, d, st)
			}
			if len(names) == 0 {
				ht := &p.idx.hv6
				if a.Is4() {
					ht = &p.idx.hv4
				}
				for n := ht.lookup(key(a)); n >= 0; n = ht.nodes[n].parent {
					best = p.firstInNode(&ht.nodes[n], after, best, d, st)
				}
			} else {
				best = p.firstNamedRule(after, best, d, names)
			}
		}
		best = p.firstIn(p.idx.all, after, best, d, true)
	case syscall.AF_UNIX:
		best = p.firstIn(p.idx.unix, after, best, d, true)
		best = p.firstIn(p.idx.all, after, best, d, true)
	case syscall.AF_UNSPEC:
		best = p.firstIn(p.idx.family, after, best, d, true)
	default:
		best = p.firstIn(p.idx.family, after, best, d, true)
		best = p.firstIn(p.idx.all, after, best, d, true)
	}
	return best
}

// firstIn returns the first rule in list, after `after` and before best,
// that matches d; else best. full: check the family too (lists that mix
// families); trie nodes have checked the address already.
func (p *Policy) firstIn(list []int32, after, best int32, d *Dest, full bool) int32 {
	for _, i := range list {
		if i >= best {
			break
		}
		if i <= after {
			continue
		}
		r := p.rules[i]
		if full {
			if r.matches(d) {
				return i
			}
		} else if r.matchRest(d) {
			return i
		}
	}
	return best
}

// firstNamedRule returns the first rule with host names, after `after`
// and before best, whose names match one of names.
func (p *Policy) firstNamedRule(after, best int32, d *Dest, names []string) int32 {
	for _, i := range p.idx.named {
		if i >= best {
			break
		}
		if i <= after {
			continue
		}
		r := p.rules[i]
		if r.matchRest(d) && r.nameMatch(names, d.Addr) >= 0 {
			return i
		}
	}
	return best
}

// firstInNode is firstIn for the rules of a prefix node, which skips rules
// by their prefilter before looking at them.
func (p *Policy) firstInNode(n *ipNode, after, best int32, d *Dest, st int8) int32 {
	for k, i := range n.rules {
		if i >= best {
			break
		}
		f := &n.pre[k]
		if i <= after || d.Port < f.lo || d.Port > f.hi || (f.st >= 0 && f.st != st) {
			continue
		}
		if p.rules[i].matchRest(d) {
			return i
		}
	}
	return best
}
