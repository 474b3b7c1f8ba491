package policy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Error is a problem in a policy, with its place: a file, line and column,
// or the flag and its value. Load returns every Error it finds, joined.
type Error struct {
	File string // policy file, "" for a flag
	Line int    // 1-based
	Col  int    // 1-based byte column; 0 when unknown
	Flag string // "--deny" when the rule came from a flag
	// Value is the flag's value as typed.
	Value string
	Msg   string
}

func (e *Error) Error() string {
	switch {
	case e.Flag != "":
		return fmt.Sprintf("%s %q: %s", e.Flag, e.Value, e.Msg)
	case e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// where is the place of a line being parsed; at makes an Error for a column
// of it.
type where struct {
	file  string
	line  int
	flag  string
	value string
	def   bool // the embedded default
	col   int  // column of the line's first word: errors about the whole rule point there
}

func (w where) at(col int, format string, args ...any) *Error {
	if col == 0 {
		col = w.col
	}
	e := &Error{File: w.file, Line: w.line, Col: col, Flag: w.flag, Value: w.value, Msg: fmt.Sprintf(format, args...)}
	if w.flag != "" {
		e.Col = 0
	}
	return e
}

type token struct {
	s   string
	col int // 1-based
}

// tokenize splits a line at blanks and drops a comment: '#' at the start
// of a word begins one (so a path may still contain '#').
func tokenize(line string) []token {
	var toks []token
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
			i++
		}
		if i >= len(line) || line[i] == '#' {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' {
			j++
		}
		toks = append(toks, token{line[i:j], i + 1})
		i = j
	}
	return toks
}

// Keywords of the long form, for suggestions on typos.
var keywords = []string{
	"allow", "deny", "log", "fail", "default", "include", "resolve", "mode",
	"tcp", "udp", "any", "unix", "unnamed", "port", "blackhole",
	"exe", "uid", "errno", "when", "probability", "delay", "timeout",
	"after", "for", "every",
	"dns", "allow-private", "loopback", "private", "link-local", "metadata", "public",
}

func parseAction(s string) (Action, bool) {
	switch s {
	case "allow":
		return Allow, true
	case "deny":
		return Deny, true
	case "log":
		return Log, true
	case "fail":
		return Fail, true
	}
	return 0, false
}

// suggest returns the keyword nearest to s when it is close enough to be a
// typo, else "".
// Suggest returns the word of words closest to s, or "" when none is
// close enough to be what was meant (for "did you mean" hints).
func Suggest(s string, words []string) string { return suggest(s, words) }

func suggest(s string, words []string) string {
	if len(s) < 2 {
		return ""
	}
	best, bestD := "", 3
	for _, w := range words {
		if d := editDistance(s, w); d < bestD && (d <= 1 || len(w) >= 4 && d <= 2) {
			best, bestD = w, d
		}
	}
	return best
}

// ruleBuilder collects the words of one rule and checks them against each
// other.
type ruleBuilder struct {
	r    *Rule
	w    where
	dest string // "", "inet", "unix", "family", "any": what kind of destination the words so far named
	// columns of words, for errors about combinations
	protoCol, portCol, errnoCol, blackholeCol, whenCol, probCol, delayCol, timeoutCol int
	afterCol, forCol, everyCol                                                        int
	destCol                                                                           int
	errnoSet                                                                          bool
	sawStar                                                                           bool // * (every address) was given
}

func (b *ruleBuilder) setDest(kind string, col int, word string) error {
	if b.dest == "" || b.dest == kind && kind == "inet" {
		b.dest = kind
		if b.destCol == 0 {
			b.destCol = col
		}
		return nil
	}
	if b.dest == kind {
		return b.w.at(col, "%q: the rule already names a destination at column %d (one destination matcher per rule, except several addresses)", word, b.destCol)
	}
	return b.w.at(col, "%q cannot be combined with the %s destination at column %d (one family per rule)", word, b.dest, b.destCol)
}

// parseRuleWords parses the words after the action of a rule line (long or
// compact form, or both mixed).
func parseRuleWords(action Action, toks []token, w where) (*Rule, error) {
	r := &Rule{action: action, file: w.file, line: w.line, flag: w.flag, def: w.def}
	b := &ruleBuilder{r: r, w: w}
	if len(toks) == 0 {
		return nil, w.at(0, "%s needs a destination (like 10.0.0.0/8:443, unix:/run/x.sock or any)", action)
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		s := t.s
		if k, v, ok := strings.Cut(s, "="); ok && isOptionKey(k) {
			if err := b.option(k, v, t.col, t.col+len(k)+1); err != nil {
				return nil, err
			}
			continue
		}
		switch s {
		case "tcp", "udp", "any":
			if b.protoCol != 0 {
				return nil, w.at(t.col, "protocol %q given twice (first at column %d)", s, b.protoCol)
			}
			b.protoCol = t.col
			switch s {
			case "tcp":
				r.proto = protoTCP
			case "udp":
				r.proto = protoUDP
			}
			if s != "any" {
				if err := b.setDest("inet", t.col, s); err != nil {
					return nil, err
				}
			}
			continue
		case "unix":
			if b.dest == "unix" {
				return nil, w.at(t.col, "unix given twice")
			}
			if err := b.setDest("unix", t.col, s); err != nil {
				return nil, err
			}
			r.scope = scopeUnix
			continue
		case "unnamed":
			if err := b.unixMatcher(unixUnnamed, "", t.col, s); err != nil {
				return nil, err
			}
			continue
		case "port":
			if i+1 >= len(toks) {
				return nil, w.at(t.col+len(s)+1, "port needs a value (like 443, 8000-8100 or 80,443)")
			}
			i++
			if err := b.setPorts(toks[i].s, toks[i].col); err != nil {
				return nil, err
			}
			continue
		case "allow-private":
			if err := b.setDest("inet", t.col, s); err != nil {
				return nil, err
			}
			r.scope = scopeInet
			r.allowPrivate = true
			continue
		case "blackhole":
			if b.blackholeCol != 0 {
				return nil, w.at(t.col, "blackhole given twice")
			}
			b.blackholeCol = t.col
			r.blackhole = true
			continue
		}
		if fam, ok := familyByName(s); ok {
			if err := b.setDest("family", t.col, s); err != nil {
				return nil, err
			}
			r.scope, r.family = scopeFamily, fam
			continue
		}
		switch s[0] {
		case '/':
			if err := b.unixMatcher(unixPath, s, t.col, s); err != nil {
				return nil, err
			}
			continue
		case '@':
			if err := b.unixMatcher(unixAbstract, s[1:], t.col, s); err != nil {
				return nil, err
			}
			continue
		}
		if err := b.compact(s, t.col); err != nil {
			return nil, err
		}
	}
	return b.finish()
}

func isOptionKey(k string) bool {
	switch k {
	case "exe", "uid", "errno", "when", "probability", "delay", "timeout", "after", "for", "every":
		return true
	}
	return false
}

func (b *ruleBuilder) unixMatcher(kind unixKind, pattern string, col int, word string) error {
	r := b.r
	if b.dest == "unix" && r.unix != unixAny {
		return b.w.at(col, "%q: the rule already names a unix socket (one per rule)", word)
	}
	if err := b.setDestUnix(col, word); err != nil {
		return err
	}
	r.scope, r.unix = scopeUnix, kind
	if kind == unixPath || kind == unixAbstract {
		if pattern == "" {
			return b.w.at(col, "empty abstract name: write @NAME or @* for every abstract socket")
		}
		g, err := compileGlob(pattern, kind == unixAbstract)
		if err != nil {
			return b.w.at(col, "%v", err)
		}
		r.glob = g
	}
	return nil
}

// setDestUnix accepts a unix matcher after a bare `unix` word.
func (b *ruleBuilder) setDestUnix(col int, word string) error {
	if b.dest == "unix" {
		return nil
	}
	return b.setDest("unix", col, word)
}

func (b *ruleBuilder) setPorts(spec string, col int) error {
	if b.portCol != 0 {
		return b.w.at(col, "ports given twice (first at column %d)", b.portCol)
	}
	if err := b.setDest("inet", col, spec); err != nil {
		return err
	}
	b.portCol = col
	ps, err := parsePorts(spec)
	if err != nil {
		return b.w.at(col, "%v", err)
	}
	b.r.ports = ps
	b.r.scope = scopeInet
	return nil
}

// parsePorts reads N, N-M, lists of those, or * (every port: nil).
func parsePorts(spec string) ([]portRange, error) {
	if spec == "*" {
		return nil, nil
	}
	if spec == "" {
		return nil, errors.New("empty port list (expected a port like 443, a range 8000-8100, a list 80,443, or *)")
	}
	var ps []portRange
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		l, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		h := l
		if isRange {
			if h, err = parsePort(hi); err != nil {
				return nil, err
			}
			if h < l {
				return nil, fmt.Errorf("port range %q is backwards (expected LOW-HIGH)", part)
			}
		}
		ps = append(ps, portRange{l, h})
	}
	slices.SortFunc(ps, func(a, b portRange) int { return int(a.lo) - int(b.lo) })
	merged := ps[:1]
	for _, p := range ps[1:] {
		last := &merged[len(merged)-1]
		if int(p.lo) <= int(last.hi)+1 {
			last.hi = max(last.hi, p.hi)
			continue
		}
		merged = append(merged, p)
	}
	return merged, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("invalid port %q (expected a number 0-65535)", s)
	}
	return uint16(n), nil
}

// option handles key=value words; col is the word's column, vcol the
// value's.
func (b *ruleBuilder) option(k, v string, col, vcol int) error {
	r := b.r
	twice := func(c *int) error {
		if *c != 0 {
			return b.w.at(col, "%s given twice (first at column %d)", k, *c)
		}
		*c = col
		return nil
	}
	switch k {
	case "exe":
		if r.exe != nil {
			return b.w.at(col, "exe given twice")
		}
		if v == "" {
			return b.w.at(vcol, "exe needs a path glob (like exe=/usr/bin/curl)")
		}
		g, err := compileGlob(v, false)
		if err != nil {
			return b.w.at(vcol, "%v", err)
		}
		r.exe = g
	case "uid":
		if r.uidSet {
			return b.w.at(col, "uid given twice")
		}
		lo, hi, isRange := strings.Cut(v, "-")
		l, err := strconv.ParseUint(lo, 10, 32)
		h := l
		if err == nil && isRange {
			h, err = strconv.ParseUint(hi, 10, 32)
		}
		if err != nil || h < l {
			return b.w.at(vcol, "invalid uid %q (expected a number like 1000 or a range 1000-1999)", v)
		}
		r.uidSet, r.uidLo, r.uidHi = true, uint32(l), uint32(h)
	case "errno":
		if err := twice(&b.errnoCol); err != nil {
			return err
		}
		if v == "blackhole" {
			r.blackhole = true
			b.blackholeCol = col
			return nil
		}
		e, err := ParseErrno(v)
		if err != nil {
			return b.w.at(vcol, "%v", err)
		}
		r.errno = e
		b.errnoSet = true
	case "when":
		if err := twice(&b.whenCol); err != nil {
			return err
		}
		first, last, step, err := parseWhen(v)
		if err != nil {
			return b.w.at(vcol, "%v", err)
		}
		r.whenSet, r.whenFirst, r.whenLast, r.whenStep = true, first, last, step
	case "probability":
		if err := twice(&b.probCol); err != nil {
			return err
		}
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(p) || p < 0 || p > 1 {
			return b.w.at(vcol, "invalid probability %q (expected a number from 0 to 1, like 0.05)", v)
		}
		r.probSet, r.prob = true, p
		if p >= 1 {
			r.probThr = probAlways
		} else {
			r.probThr = uint64(p * (1 << 64))
		}
	case "delay", "timeout":
		c := &b.delayCol
		if k == "timeout" {
			c = &b.timeoutCol
		}
		if err := twice(c); err != nil {
			return err
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return b.w.at(vcol, "invalid %s %q (expected a duration like 250ms or 2s)", k, v)
		}
		if k == "delay" {
			r.delay = d
		} else {
			r.timeout = d
		}
	case "after", "for", "every":
		c := map[string]*int{"after": &b.afterCol, "for": &b.forCol, "every": &b.everyCol}[k]
		if err := twice(c); err != nil {
			return err
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d == 0 && k != "after" {
			return b.w.at(vcol, "invalid %s %q (expected a positive duration like 5s or 2m)", k, v)
		}
		r.winSet = true
		switch k {
		case "after":
			r.winAfter = d
		case "for":
			r.winFor = d
		case "every":
			r.winEvery = d
		}
	}
	return nil
}

// parseWhen reads strace's when= syntax: FIRST, FIRST+, FIRST+STEP,
// FIRST..LAST, FIRST..LAST+STEP. last 0 means no end.
func parseWhen(v string) (first, last, step uint64, err error) {
	bad := func() (uint64, uint64, uint64, error) {
		return 0, 0, 0, fmt.Errorf("invalid when %q (expected FIRST, FIRST..LAST, FIRST+STEP or FIRST..LAST+STEP, counting from 1)", v)
	}
	spec, stepStr, hasStep := strings.Cut(v, "+")
	firstStr, lastStr, hasLast := strings.Cut(spec, "..")
	if first, err = strconv.ParseUint(firstStr, 10, 63); err != nil || first == 0 {
		return bad()
	}
	step = 1
	if hasStep && stepStr != "" {
		if step, err = strconv.ParseUint(stepStr, 10, 63); err != nil || step == 0 {
			return bad()
		}
	}
	switch {
	case hasLast:
		if last, err = strconv.ParseUint(lastStr, 10, 63); err != nil || last < first {
			return bad()
		}
	case !hasStep:
		last = first // FIRST alone: that one connect only
	}
	return first, last, step, nil
}

// compact parses a word of the flag form:
//
//	[tcp:|udp:]DEST[=ERRNO|=blackhole][:OPTION=V,...]
//
// where DEST is ADDR[/LEN][:PORTS], [V6[/LEN]][:PORTS], *[:PORTS],
// HOST[:PORTS], unix, unix:/PATHGLOB, unix:@NAMEGLOB, unix:unnamed, any or
// a family name.
func (b *ruleBuilder) compact(s string, col int) error {
	// Options first, so that '=' and ',' inside them do not confuse the rest.
	if i := optionStart(s); i >= 0 {
		opts := s[i+1:]
		ocol := col + i + 1
		s = s[:i]
		for _, o := range strings.Split(opts, ",") {
			k, v, ok := strings.Cut(o, "=")
			if !ok || !isOptionKey(k) || k == "exe" || k == "uid" {
				return b.w.at(ocol, "unknown option %q (expected %s)", o, optionList)
			}
			if err := b.option(k, v, ocol, ocol+len(k)+1); err != nil {
				return err
			}
			ocol += len(o) + 1
		}
	}
	if i := strings.IndexByte(s, '='); i >= 0 {
		out := s[i+1:]
		ocol := col + i + 1
		s = s[:i]
		if j := strings.IndexByte(out, ':'); j >= 0 {
			// Known options were taken above: what is left is not one.
			return b.w.at(ocol+j+1, "unknown option %q (expected %s)", out[j+1:], optionList)
		}
		if out == "blackhole" {
			if b.blackholeCol != 0 {
				return b.w.at(ocol, "blackhole given twice")
			}
			b.blackholeCol = ocol
			b.r.blackhole = true
		} else if out != "" {
			if b.errnoCol != 0 {
				return b.w.at(ocol, "errno given twice (first at column %d)", b.errnoCol)
			}
			e, err := ParseErrno(out)
			if err != nil {
				return b.w.at(ocol, "%v", err)
			}
			b.errnoCol = ocol
			b.errnoSet = true
			b.r.errno = e
		}
	}
	if s == "" {
		return b.w.at(col, "missing destination (like 10.0.0.0/8:443, unix:/run/x.sock or any)")
	}
	for _, p := range []string{"tcp:", "udp:", "any:"} {
		if strings.HasPrefix(s, p) {
			if err := b.compact(p[:3], col); err != nil {
				return err
			}
			s, col = s[4:], col+4
			break
		}
	}
	switch {
	case s == "tcp" || s == "udp" || s == "any":
		// A protocol word (from the prefix above, or alone).
		if b.protoCol != 0 {
			return b.w.at(col, "protocol %q given twice (first at column %d)", s, b.protoCol)
		}
		b.protoCol = col
		switch s {
		case "tcp":
			b.r.proto = protoTCP
		case "udp":
			b.r.proto = protoUDP
		}
		if s != "any" {
			return b.setDest("inet", col, s)
		}
		return nil
	case s == "unix":
		if err := b.setDest("unix", col, s); err != nil {
			return err
		}
		b.r.scope = scopeUnix
		return nil
	case strings.HasPrefix(s, "unix:"):
		rest := s[5:]
		switch {
		case rest == "unnamed":
			return b.unixMatcher(unixUnnamed, "", col, s)
		case strings.HasPrefix(rest, "/"):
			return b.unixMatcher(unixPath, rest, col+5, s)
		case strings.HasPrefix(rest, "@"):
			return b.unixMatcher(unixAbstract, rest[1:], col+5, s)
		}
		return b.w.at(col+5, "unix socket %q: expected a path starting with /, an abstract name starting with @, or unnamed", rest)
	}
	if fam, ok := familyByName(s); ok {
		if err := b.setDest("family", col, s); err != nil {
			return err
		}
		b.r.scope, b.r.family = scopeFamily, fam
		return nil
	}
	return b.inetDest(s, col)
}

// optionList names the options of the compact form, for errors.
const optionList = "when=, probability=, delay=, timeout=, errno=, after=, for= or every="

// optionStart finds the ':' that begins a compact word's options, or -1.
func optionStart(s string) int {
	best := -1
	for _, k := range []string{":when=", ":probability=", ":delay=", ":timeout=", ":errno=", ":after=", ":for=", ":every="} {
		if i := strings.Index(s, k); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// inetDest parses an address, prefix, host name or *, with optional ports.
func (b *ruleBuilder) inetDest(s string, col int) error {
	addr, ports := s, ""
	hasPorts := false
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return b.w.at(col, "%q: missing ']' after the IPv6 address", s)
		}
		addr = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return b.w.at(col+end+1, "unexpected %q after ']' (expected :PORTS)", rest)
			}
			ports, hasPorts = rest[1:], true
		}
		if addr == "" || addr == "*" {
			return b.w.at(col, "%q: expected an IPv6 address or prefix in brackets", s)
		}
	default:
		if _, err := netip.ParsePrefix(s); err == nil {
			break
		}
		if _, err := netip.ParseAddr(s); err == nil {
			break
		}
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			addr, ports, hasPorts = s[:i], s[i+1:], true
			if strings.Contains(addr, ":") {
				return b.w.at(col, "%q: an IPv6 address with a port needs brackets, like [::1]:80", s)
			}
		}
	}
	if err := b.setDest("inet", col, s); err != nil {
		return err
	}
	b.r.scope = scopeInet
	if hasPorts {
		if err := b.setPorts(ports, col+len(s)-len(ports)); err != nil {
			return err
		}
	}
	if addr == "*" {
		if len(b.r.prefixes)+len(b.r.hosts)+len(b.r.wild)+len(b.r.groups) > 0 {
			return b.w.at(col, "* (every address) cannot be combined with other addresses")
		}
		b.sawStar = true
		return nil
	}
	if b.sawStar {
		return b.w.at(col, "%q cannot be combined with * (every address)", addr)
	}
	switch addr {
	case "inet":
		addr = "0.0.0.0/0"
	case "inet6":
		addr = "::/0"
	}
	if ps, ok := addrGroup(addr); ok {
		b.r.groups = append(b.r.groups, addr)
		b.r.groupPfx = append(b.r.groupPfx, ps...)
		return nil
	}
	if rest, ok := strings.CutPrefix(addr, "*."); ok {
		// A wildcard: one or more labels under rest, not rest itself.
		if strings.Contains(rest, "*") || checkHostName(rest) != nil {
			return b.w.at(col, "invalid wildcard %q (expected *.example.com: a * label, then a name)", addr)
		}
		b.r.wild = append(b.r.wild, "."+canonicalName(rest))
		return nil
	}
	p, err := parseAddrOrPrefix(addr)
	if err == nil {
		if raw, err := netip.ParsePrefix(addr); err == nil && raw.Masked() != raw {
			b.r.hostBits = append(b.r.hostBits, addr)
		}
		b.r.prefixes = append(b.r.prefixes, p)
		return nil
	}
	if looksNumeric(addr) || strings.Contains(addr, ":") || strings.Contains(addr, "/") {
		return b.w.at(col, "invalid address %q: %v", addr, err)
	}
	if herr := checkHostName(addr); herr != nil {
		if sug := suggest(addr, keywords); sug != "" {
			return b.w.at(col, "unknown word %q (did you mean %s?)", addr, sug)
		}
		return b.w.at(col, "%v", herr)
	}
	if !strings.Contains(addr, ".") {
		if sug := suggest(strings.ToLower(addr), keywords); sug != "" {
			return b.w.at(col, "unknown word %q (did you mean %s? a host name without dots would be written with a trailing dot: %s.)", addr, sug, addr)
		}
	}
	b.r.hosts = append(b.r.hosts, strings.ToLower(addr))
	b.r.names = append(b.r.names, canonicalName(addr))
	return nil
}

func looksNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return s != ""
}

// parseAddrOrPrefix reads an address or CIDR. An IPv4-mapped IPv6 prefix
// becomes the IPv4 prefix it maps, because matching treats mapped
// destinations as IPv4.
func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, err
		}
		if a.Zone() != "" {
			return p, errors.New("zones (%iface) are not supported")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}

func checkHostName(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("host name %.20q... is too long", h)
	}
	labels := strings.TrimSuffix(h, ".")
	if labels == "" {
		return fmt.Errorf("invalid host name %q", h)
	}
	for _, l := range strings.Split(labels, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("invalid host name %q (expected an address, a CIDR, or a name like api.example.com)", h)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("invalid host name %q (expected an address, a CIDR, or a name like api.example.com)", h)
			}
		}
	}
	return nil
}

// finish checks the rule as a whole and computes its decision.
func (b *ruleBuilder) finish() (*Rule, error) {
	r, w := b.r, b.w
	switch b.dest {
	case "", "any":
		if r.scope != scopeUnix && r.scope != scopeFamily {
			r.scope = scopeAll
		}
	case "inet":
		r.scope = scopeInet
	}
	if r.allowPrivate && !r.hasNames() {
		return nil, w.at(0, "allow-private applies to rules with host names (it lets their DNS answers allow loopback, private and link-local addresses)")
	}
	switch r.action {
	case Allow, Log:
		for _, c := range []struct {
			col  int
			what string
		}{{b.errnoCol, "errno"}, {b.blackholeCol, "blackhole"}, {b.whenCol, "when"}, {b.probCol, "probability"}, {b.timeoutCol, "timeout"},
			{b.afterCol, "after"}, {b.forCol, "for"}, {b.everyCol, "every"}} {
			if c.col != 0 {
				return nil, w.at(c.col, "%s does not apply to %s (only to fail%s)", c.what, r.action, map[bool]string{true: " and deny", false: ""}[c.what == "errno"])
			}
		}
	case Deny:
		for _, c := range []struct {
			col  int
			what string
		}{{b.blackholeCol, "blackhole"}, {b.whenCol, "when"}, {b.probCol, "probability"}, {b.timeoutCol, "timeout"}, {b.delayCol, "delay"},
			{b.afterCol, "after"}, {b.forCol, "for"}, {b.everyCol, "every"}} {
			if c.col != 0 {
				return nil, w.at(c.col, "%s does not apply to deny (use fail for injected faults)", c.what)
			}
		}
		if !b.errnoSet {
			r.errno = syscall.EPERM
		}
	case Fail:
		switch {
		case r.blackhole && b.errnoSet:
			return nil, w.at(b.errnoCol, "fail takes either errno= or blackhole, not both")
		case !r.blackhole && !b.errnoSet:
			return nil, w.at(0, "fail needs errno=NAME or blackhole (like fail 127.0.0.1:5432=ECONNREFUSED)")
		case b.timeoutCol != 0 && !r.blackhole:
			return nil, w.at(b.timeoutCol, "timeout applies to blackhole only (errno faults answer after delay=)")
		case b.everyCol != 0 && b.forCol == 0:
			return nil, w.at(b.everyCol, "every needs for= (how long each window lasts, like every=30s for=5s)")
		case b.everyCol != 0 && r.winFor >= r.winEvery:
			return nil, w.at(b.forCol, "for=%v must be shorter than every=%v (the rule would never stop failing)", r.winFor, r.winEvery)
		}
	}
	r.decision = Decision{Action: r.action, Errno: r.errno, Delay: r.delay, Blackhole: r.blackhole, Timeout: r.timeout, Rule: r}
	return r, nil
}

// parseDefault parses the words after `default`: ACTION [errno=E]
// [delay=D], or the compact ACTION=ERRNO.
func parseDefault(toks []token, w where) (*Rule, error) {
	if len(toks) == 0 {
		return nil, w.at(0, "default needs an action: allow, deny or log")
	}
	t := toks[0]
	name, errno, hasErrno := strings.Cut(t.s, "=")
	a, ok := parseAction(name)
	if !ok || a == Fail {
		msg := fmt.Sprintf("unknown default action %q (expected allow, deny or log)", name)
		if sug := suggest(name, []string{"allow", "deny", "log"}); sug != "" && a != Fail {
			msg = fmt.Sprintf("unknown default action %q (did you mean %s?)", name, sug)
		}
		return nil, w.at(t.col, "%s", msg)
	}
	r := &Rule{action: a, file: w.file, line: w.line, flag: w.flag, def: w.def, isDefault: true}
	b := &ruleBuilder{r: r, w: w}
	if hasErrno {
		if err := b.option("errno", errno, t.col, t.col+len(name)+1); err != nil {
			return nil, err
		}
	}
	for _, t := range toks[1:] {
		k, v, ok := strings.Cut(t.s, "=")
		if !ok || (k != "errno" && k != "delay") {
			return nil, w.at(t.col, "unexpected %q after default %s (expected errno=NAME or delay=DURATION)", t.s, a)
		}
		if err := b.option(k, v, t.col, t.col+len(k)+1); err != nil {
			return nil, err
		}
	}
	if r.blackhole {
		return nil, w.at(b.errnoCol, "blackhole does not apply to default (use a fail rule)")
	}
	r, err := b.finish()
	if err != nil {
		return nil, err
	}
	r.decision.Rule = nil
	return r, nil
}

// resolvePath makes an include path relative to the including file.
func resolvePath(from, inc string) string {
	if filepath.IsAbs(inc) {
		return filepath.Clean(inc)
	}
	return filepath.Join(filepath.Dir(from), inc)
}
