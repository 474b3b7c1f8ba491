package learn

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/connvisor/connvisor/policy"
)

// Options say how Write groups destinations and what the header says.
type Options struct {
	// PerExe puts exe= on the rule of a destination that one executable
	// alone used.
	PerExe bool
	// CollapseIPv4 and CollapseIPv6 widen addresses to prefixes of this
	// length (24: 10.1.2.3 → 10.1.2.0/24); 0 keeps addresses.
	CollapseIPv4, CollapseIPv6 int
	// TempRoots are temporary directories besides DefaultTempRoots
	// ($TMPDIR): see GeneralisePath.
	TempRoots []string
	// Command is the command that ran, for the header.
	Command []string
	// Now is when the file is written, for the header.
	Now time.Time
	// NoDates leaves out the header's date and every first and last seen,
	// so that two runs doing the same things write the same bytes.
	NoDates bool
	// NoHosts writes addresses even for destinations the run's DNS
	// answers named (connvisor learn --hosts=never).
	NoHosts bool
}

// maxAddrsPerRule keeps a rule line readable: more addresses with the same
// ports take several rules.
const maxAddrsPerRule = 8

// maxExesInComment bounds the executables a rule's comment names.
const maxExesInComment = 3

// maxAddrsInComment bounds the addresses a host rule's comment names.
const maxAddrsInComment = 4

// rule is one rule of the learned policy, with what the run did with it.
type rule struct {
	kind  int   // order of the rule's block, see kindOrder
	proto proto // inet
	host  string
	// addrs are the rule's addresses; for a host rule, the addresses the
	// run connected to under the name (for its comment).
	addrs []netip.Prefix
	ports []uint16 // sorted, distinct
	glob  string   // unix path or abstract glob, family name
	exe   string   // exe= glob, "" for none
	use   usage
	exes  map[string]bool
}

// Kinds of rules, in the order the file lists them.
const (
	kindHost = iota
	kindInet4
	kindInet6
	kindUnixPath
	kindUnixAbstract
	kindUnixUnnamed
	kindFamily
)

// text is the rule as a policy line, without its comment.
func (r *rule) text() string {
	var b strings.Builder
	b.WriteString("allow ")
	switch r.kind {
	case kindHost:
		b.WriteString(r.proto.String() + " " + r.host)
		if r.private() {
			b.WriteString(" allow-private")
		}
		b.WriteString(" port ")
		b.WriteString(formatPorts(r.ports))
	case kindInet4, kindInet6:
		b.WriteString(r.proto.String())
		for _, a := range r.addrs {
			b.WriteByte(' ')
			b.WriteString(formatPrefix(a))
		}
		b.WriteString(" port ")
		b.WriteString(formatPorts(r.ports))
	case kindUnixPath:
		b.WriteString("unix " + r.glob)
	case kindUnixAbstract:
		b.WriteString("unix @" + r.glob)
	case kindUnixUnnamed:
		b.WriteString("unix unnamed")
	default:
		b.WriteString(r.glob)
	}
	if r.exe != "" {
		b.WriteString(" exe=" + r.exe)
	}
	return b.String()
}

// private reports whether a host rule needs allow-private: the name gave
// an address that a rule's names allow only with it (policy.Rebindable).
func (r *rule) private() bool {
	return slices.ContainsFunc(r.addrs, func(p netip.Prefix) bool { return policy.Rebindable(p.Addr()) })
}

func formatPrefix(p netip.Prefix) string {
	s := p.String()
	if p.IsSingleIP() {
		s = p.Addr().String()
	}
	if p.Addr().Is6() {
		return "[" + s + "]"
	}
	return s
}

// formatPorts merges sorted distinct ports into a list of ranges.
func formatPorts(ps []uint16) string {
	var b strings.Builder
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(ps[i])))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(ps[j])))
		}
		i = j + 1
	}
	return b.String()
}

// comment says how the run used the rule.
func (r *rule) comment(noDates bool) string {
	var parts []string
	n := plural(r.use.connects, "connect")
	if r.use.sends > 0 {
		n += ", " + plural(r.use.sends, "send")
	}
	parts = append(parts, n)
	exes := sortedKeys(r.exes)
	var named []string
	for i, e := range exes {
		if i == maxExesInComment {
			named = append(named, fmt.Sprintf("and %d more", len(exes)-i))
			break
		}
		if e == "" {
			e = "(unknown executable)"
		}
		named = append(named, quote(e))
	}
	parts = append(parts, "by "+strings.Join(named, ", "))
	if r.kind == kindHost {
		var seen []string
		for i, a := range r.addrs {
			if i == maxAddrsInComment {
				seen[i-1] += fmt.Sprintf(" and %d more", len(r.addrs)-i)
				break
			}
			seen = append(seen, a.Addr().String())
		}
		parts = append(parts, "seen at "+strings.Join(seen, ", "))
	}
	if !noDates && !r.use.first.IsZero() {
		parts = append(parts, "first "+stamp(r.use.first)+", last "+stamp(r.use.last))
	}
	return strings.Join(parts, "; ")
}

func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.FormatUint(n, 10) + " " + what + "s"
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// quote writes a word of a comment so that no byte of it can end the line
// or hide: plain words as they are, anything else as a Go string.
func quote(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '\'' {
			return strconv.QuoteToASCII(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// rules groups the recorded destinations into rules, in file order.
func rules(seen map[key]usage, opts Options) []*rule {
	// Where each destination goes without its executable, and who used it.
	type dkey struct {
		kind   int
		proto  proto
		host   string
		prefix netip.Prefix
		port   uint16
		glob   string
	}
	users := map[dkey]map[string]bool{}
	dk := func(k key) dkey {
		d := dkey{proto: k.proto, port: k.port}
		switch {
		case k.host != "" && !opts.NoHosts:
			d.kind, d.host = kindHost, k.host
		case k.family == syscall.AF_INET || k.family == syscall.AF_INET6:
			d.kind, d.prefix = kindInet6, netip.PrefixFrom(k.addr, 128)
			if n := opts.CollapseIPv6; n > 0 && n < 128 {
				d.prefix, _ = k.addr.Prefix(n)
			}
			if k.addr.Is4() {
				d.kind, d.prefix = kindInet4, netip.PrefixFrom(k.addr, 32)
				if n := opts.CollapseIPv4; n > 0 && n < 32 {
					d.prefix, _ = k.addr.Prefix(n)
				}
			}
		case k.family == syscall.AF_UNIX && k.unnamed:
			d.kind = kindUnixUnnamed
		case k.family == syscall.AF_UNIX && k.abstract:
			d.kind, d.glob = kindUnixAbstract, GeneraliseAbstract(k.path, opts.TempRoots)
		case k.family == syscall.AF_UNIX:
			d.kind, d.glob = kindUnixPath, GeneralisePath(k.path, opts.TempRoots)
		default:
			d.kind, d.glob = kindFamily, policy.Dest{Family: k.family}.String()
		}
		return d
	}
	for k := range seen {
		d := dk(k)
		if users[d] == nil {
			users[d] = map[string]bool{}
		}
		users[d][k.exe] = true
	}
	// One group per destination without ports (and per executable, when
	// one executable alone used it and PerExe asks).
	type gkey struct {
		kind   int
		proto  proto
		host   string
		prefix netip.Prefix
		glob   string
		exe    string
	}
	type group struct {
		ports map[uint16]bool
		addrs map[netip.Addr]bool // a host's
		use   usage
		exes  map[string]bool
	}
	groups := map[gkey]*group{}
	for k, u := range seen {
		d := dk(k)
		g := gkey{kind: d.kind, proto: d.proto, host: d.host, prefix: d.prefix, glob: d.glob}
		if opts.PerExe && len(users[d]) == 1 && k.exe != "" {
			g.exe = exeGlob(k.exe, opts.TempRoots)
		}
		gr := groups[g]
		if gr == nil {
			gr = &group{ports: map[uint16]bool{}, addrs: map[netip.Addr]bool{}, exes: map[string]bool{}}
			groups[g] = gr
		}
		gr.ports[k.port] = true
		if d.kind == kindHost {
			gr.addrs[k.addr] = true
		}
		gr.use.add(u)
		gr.exes[k.exe] = true
	}
	// Addresses with the same protocol, ports and executable share a
	// rule; a host has its own.
	type rkey struct {
		kind  int
		proto proto
		host  string
		ports string
		glob  string
		exe   string
	}
	byRule := map[rkey][]*rule{}
	var order []rkey
	for g, gr := range groups {
		r := &rule{kind: g.kind, proto: g.proto, host: g.host, glob: g.glob, exe: g.exe, use: gr.use, exes: gr.exes}
		switch g.kind {
		case kindInet4, kindInet6:
			r.addrs = []netip.Prefix{g.prefix}
		case kindHost:
			for a := range gr.addrs {
				r.addrs = append(r.addrs, netip.PrefixFrom(a, a.BitLen()))
			}
			slices.SortFunc(r.addrs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		}
		if g.kind == kindHost || g.kind == kindInet4 || g.kind == kindInet6 {
			for p := range gr.ports {
				r.ports = append(r.ports, p)
			}
			slices.Sort(r.ports)
		}
		rk := rkey{kind: g.kind, proto: g.proto, host: g.host, ports: formatPorts(r.ports), glob: g.glob, exe: g.exe}
		if byRule[rk] == nil {
			order = append(order, rk)
		}
		byRule[rk] = append(byRule[rk], r)
	}
	var out []*rule
	for _, rk := range order {
		rs := byRule[rk]
		slices.SortFunc(rs, func(a, b *rule) int { return comparePrefix(a.addrs, b.addrs) })
		for len(rs) > 0 {
			n := min(len(rs), maxAddrsPerRule)
			if rk.kind != kindInet4 && rk.kind != kindInet6 {
				n = 1
			}
			merged := &rule{kind: rs[0].kind, proto: rs[0].proto, host: rs[0].host, ports: rs[0].ports, glob: rs[0].glob, exe: rs[0].exe, exes: map[string]bool{}}
			for _, r := range rs[:n] {
				merged.addrs = append(merged.addrs, r.addrs...)
				merged.use.add(r.use)
				for e := range r.exes {
					merged.exes[e] = true
				}
			}
			out = append(out, merged)
			rs = rs[n:]
		}
	}
	slices.SortFunc(out, compareRules)
	return out
}

// exeGlob is the exe= glob of an executable: its path, generalised like a
// socket's when it lies in a temporary directory (a test binary built
// there), as it is elsewhere (python3.11 is not python3.12), or "" when
// the path is too long for a glob.
func exeGlob(exe string, tempRoots []string) string {
	g := escape(exe)
	if tempRoot(exe, tempRoots) != "" {
		g = GeneralisePath(exe, tempRoots)
	}
	if len(g) > 200 {
		return ""
	}
	return g
}

func comparePrefix(a, b []netip.Prefix) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := a[i].Addr().Compare(b[i].Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(a[i].Bits(), b[i].Bits()); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// compareRules orders the file: by kind (host names first), then
// protocol (tcp, udp, any), then host name, first address or glob, then
// ports, then executable.
func compareRules(a, b *rule) int {
	if c := cmp.Compare(a.kind, b.kind); c != 0 {
		return c
	}
	if c := cmp.Compare(a.proto, b.proto); c != 0 {
		return c
	}
	if c := cmp.Compare(a.host, b.host); c != 0 {
		return c
	}
	if c := comparePrefix(a.addrs, b.addrs); c != 0 {
		return c
	}
	if c := slices.Compare(a.ports, b.ports); c != 0 {
		return c
	}
	if c := cmp.Compare(a.glob, b.glob); c != 0 {
		return c
	}
	return cmp.Compare(a.exe, b.exe)
}

// Write returns the learned policy: a header, one rule per destination
// group with its comment, and `default deny errno=EACCES`.
func (r *Recorder) Write(opts Options) []byte {
	s := r.snapshot()
	var b strings.Builder
	b.WriteString("# connvisor policy learned from a run of:\n")
	b.WriteString("#   " + commandLine(opts.Command) + "\n")
	if opts.NoDates {
		b.WriteString("# by connvisor learn. Each rule says how often the run used it and by\n")
		b.WriteString("# which executables.\n")
	} else {
		b.WriteString("# by connvisor learn, " + stamp(opts.Now) + ". Each rule says how often the run\n")
		b.WriteString("# used it, by which executables, first and last seen.\n")
	}
	b.WriteString("# Review it (connvisor check FILE), try it without breaking anything\n")
	b.WriteString("# (connvisor run --audit --policy FILE -- ...), then enforce it.\n")
	writeTruncation(&b, s)
	rs := rules(s.seen, opts)
	writeHostNote(&b, rs)
	if len(rs) > 0 {
		b.WriteByte('\n')
		writeRules(&b, rs, opts.NoDates)
	}
	b.WriteString("\ndefault deny errno=EACCES\n")
	return []byte(b.String())
}

// writeTruncation says in the file that destinations were left out.
func writeTruncation(b *strings.Builder, s snapshot) {
	if s.dropped == 0 {
		return
	}
	var kinds []string
	for _, k := range sortedKeys(s.lost) {
		kinds = append(kinds, fmt.Sprintf("%d %s", s.lost[k], k))
	}
	fmt.Fprintf(b, "#\n# TRUNCATED: the run reached more than %d distinct destinations (per\n", s.limit)
	fmt.Fprintf(b, "# executable); the first %d are learned below, and %s to\n", s.limit, plural(s.dropped, "call"))
	fmt.Fprintf(b, "# destinations seen after them were not (%s): the default denies them.\n", strings.Join(kinds, ", "))
	b.WriteString("# Widen rules by hand (CIDRs, port ranges, globs) or learn with --collapse-ipv4.\n")
}

// writeHostNote tells a reader of host rules how they match, when there
// are any: what enforces them differs from address rules.
func writeHostNote(b *strings.Builder, rs []*rule) {
	if !slices.ContainsFunc(rs, func(r *rule) bool { return r.kind == kindHost }) {
		return
	}
	b.WriteString("# Host names are those the run's own DNS answers gave: connvisor matches\n")
	b.WriteString("# them through the program's answers (as root), else through the addresses\n")
	b.WriteString("# they resolve to at load (--hosts=never writes addresses instead).\n")
}

// writeRules writes rules with their comments aligned.
func writeRules(b *strings.Builder, rs []*rule, noDates bool) {
	const maxPad = 48
	width := 0
	for _, r := range rs {
		if n := len(r.text()); n <= maxPad {
			width = max(width, n)
		}
	}
	for _, r := range rs {
		t := r.text()
		b.WriteString(t)
		if pad := width - len(t); pad > 0 {
			b.WriteString(strings.Repeat(" ", pad))
		}
		b.WriteString("  # " + r.comment(noDates) + "\n")
	}
}

// commandLine writes a command as a shell would read it back, on one line.
func commandLine(args []string) string {
	if len(args) == 0 {
		return "(no command)"
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// shellQuote quotes a word for a POSIX shell; a word with bytes a comment
// line cannot hold is written as a Go string instead.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c >= 0x7f {
			return strconv.QuoteToASCII(s)
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_@%+=:,./-", c) >= 0) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
