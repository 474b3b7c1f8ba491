package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// maxErrors bounds the errors Load reports: past that, more are noise.
const maxErrors = 20

// maxIncludeDepth bounds include nesting beyond cycles (a chain of distinct
// generated files).
const maxIncludeDepth = 16

// loader collects the rules of flags and files in decision order.
type loader struct {
	opts     Options
	rules    []*Rule
	def      *Rule // from the file (or the embedded default)
	flagDef  *Rule // from --default
	interval time.Duration
	resolveW string // where `resolve` was set
	audit    bool   // `mode audit`
	modeW    string // where `mode` was set
	grace    time.Duration
	graceW   string // where `dns grace` was set
	chain    []string
	errs     []error
	warnings []string
}

func (l *loader) addErr(err error) {
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, err)
	}
}

// flag parses one command-line rule.
func (l *loader) flag(f FlagRule) {
	// "fail" and "--fail" both name the flag: a Go caller copying a
	// command line should not get "unknown flag ----fail".
	f.Flag = strings.TrimLeft(f.Flag, "-")
	w := where{flag: "--" + f.Flag, value: f.Value}
	toks := tokenize(f.Value)
	if f.Flag == "default" {
		r, err := parseDefault(toks, w)
		if err != nil {
			l.addErr(err)
			return
		}
		if l.flagDef != nil {
			l.addErr(w.at(0, "--default given twice (first %s)", l.flagDef.Compact()))
			return
		}
		l.flagDef = r
		return
	}
	a, ok := parseAction(f.Flag)
	if !ok {
		msg := fmt.Sprintf("unknown flag --%s (expected --allow, --deny, --log, --fail or --default)", f.Flag)
		if s := suggest(f.Flag, []string{"allow", "deny", "log", "fail", "default"}); s != "" {
			msg = fmt.Sprintf("unknown flag --%s (did you mean --%s?)", f.Flag, s)
		}
		l.addErr(errors.New(msg))
		return
	}
	r, err := parseRuleWords(a, toks, w)
	if err != nil {
		l.addErr(err)
		return
	}
	r.src = f.Value
	l.rules = append(l.rules, r)
}

// file reads and parses a policy file; inc is the include line naming it
// (zero for the top-level file).
func (l *loader) file(path string, inc where) {
	if i := slices.Index(l.chain, path); i >= 0 {
		cycle := strings.Join(append(slices.Clone(l.chain[i:]), path), " -> ")
		l.addErr(inc.at(inc.col, "include cycle: %s", cycle))
		return
	}
	if len(l.chain) >= maxIncludeDepth {
		l.addErr(inc.at(inc.col, "includes nested more than %d deep", maxIncludeDepth))
		return
	}
	data, err := l.opts.ReadFile(path)
	if err != nil {
		if inc.file == "" {
			l.addErr(fmt.Errorf("read policy: %w", err))
		} else {
			l.addErr(inc.at(inc.col, "include: %v", err))
		}
		return
	}
	l.chain = append(l.chain, path)
	l.text(path, data, false)
	l.chain = l.chain[:len(l.chain)-1]
}

// text parses the lines of a policy.
func (l *loader) text(file string, data []byte, def bool) {
	for n, line := range strings.Split(string(data), "\n") {
		if len(l.errs) >= maxErrors {
			return
		}
		toks := tokenize(line)
		if len(toks) == 0 {
			continue
		}
		w := where{file: file, line: n + 1, def: def, col: toks[0].col}
		l.line(toks, w, strings.TrimSpace(line))
	}
}

func (l *loader) line(toks []token, w where, src string) {
	head := toks[0]
	switch head.s {
	case "default":
		r, err := parseDefault(toks[1:], w)
		if err != nil {
			l.addErr(err)
			return
		}
		if l.def != nil {
			l.addErr(w.at(head.col, "default set twice (first at %s)", l.def.Origin()))
			return
		}
		r.src = src
		l.def = r
	case "include":
		if len(toks) != 2 {
			l.addErr(w.at(head.col, "include takes one file name (include common.policy)"))
			return
		}
		inc := w
		inc.col = toks[1].col
		l.file(resolvePath(w.file, toks[1].s), inc)
	case "resolve":
		l.resolveLine(toks, w)
	case "mode":
		l.modeLine(toks, w)
	case "dns":
		l.dnsLine(toks, w)
	default:
		a, ok := parseAction(head.s)
		if !ok {
			words := []string{"allow", "deny", "log", "fail", "default", "include", "resolve", "mode", "dns"}
			if s := suggest(head.s, words); s != "" {
				l.addErr(w.at(head.col, "unknown action %q (did you mean %s?)", head.s, s))
			} else {
				l.addErr(w.at(head.col, "unknown action %q (expected allow, deny, log, fail, default, include, resolve, mode or dns)", head.s))
			}
			return
		}
		r, err := parseRuleWords(a, toks[1:], w)
		if err != nil {
			l.addErr(err)
			return
		}
		r.src = src
		l.rules = append(l.rules, r)
	}
}

// resolveLine handles `resolve every DURATION` and `resolve never`.
func (l *loader) resolveLine(toks []token, w where) {
	if l.resolveW != "" {
		l.addErr(w.at(toks[0].col, "resolve set twice (first at %s)", l.resolveW))
		return
	}
	switch {
	case len(toks) == 2 && toks[1].s == "never":
		l.interval = 0
	case len(toks) == 3 && toks[1].s == "every":
		d, err := time.ParseDuration(toks[2].s)
		if err != nil || d < time.Second {
			l.addErr(w.at(toks[2].col, "invalid interval %q (expected a duration of at least 1s, like 5m)", toks[2].s))
			return
		}
		l.interval = d
	default:
		col := toks[0].col
		if len(toks) > 1 {
			col = toks[1].col
		}
		l.addErr(w.at(col, "expected `resolve every DURATION` (like resolve every 5m) or `resolve never`"))
		return
	}
	l.resolveW = fmt.Sprintf("%s:%d", w.file, w.line)
}

// modeLine handles `mode audit` and `mode enforce` (the default).
func (l *loader) modeLine(toks []token, w where) {
	if l.modeW != "" {
		l.addErr(w.at(toks[0].col, "mode set twice (first at %s)", l.modeW))
		return
	}
	if len(toks) != 2 || (toks[1].s != "audit" && toks[1].s != "enforce") {
		col := toks[0].col
		if len(toks) > 1 {
			col = toks[1].col
		}
		l.addErr(w.at(col, "expected `mode audit` (log what would be denied, deny nothing) or `mode enforce`"))
		return
	}
	l.audit = toks[1].s == "audit"
	l.modeW = fmt.Sprintf("%s:%d", w.file, w.line)
}

// dnsLine handles `dns grace DURATION`: how long a name learned from a DNS
// answer still explains its address after the answer's TTL.
func (l *loader) dnsLine(toks []token, w where) {
	if l.graceW != "" {
		l.addErr(w.at(toks[0].col, "dns grace set twice (first at %s)", l.graceW))
		return
	}
	if len(toks) != 3 || toks[1].s != "grace" {
		l.addErr(w.at(toks[0].col, "expected `dns grace DURATION` (like dns grace 60s)"))
		return
	}
	d, err := time.ParseDuration(toks[2].s)
	if err != nil || d < 0 || d > maxNameGrace {
		l.addErr(w.at(toks[2].col, "invalid grace %q (expected a duration from 0s to %s, like 60s)", toks[2].s, maxNameGrace))
		return
	}
	l.grace = d
	l.graceW = fmt.Sprintf("%s:%d", w.file, w.line)
}

// resolveAll looks up every host name once. A name that does not resolve
// is a warning, not an error: the rule matches nothing until a re-resolve
// finds addresses. No resolver at all is an error, because then the rule
// could never match.
func (l *loader) resolveAll(ctx context.Context) error {
	cache := map[string]hostResult{}
	var errs []error
	for _, r := range l.rules {
		if len(r.hosts) == 0 {
			continue
		}
		if l.opts.Resolve == nil {
			w := where{file: r.file, line: r.line, flag: r.flag, value: r.src}
			errs = append(errs, w.at(0, "host names need a resolver (%s)", strings.Join(r.hosts, ", ")))
			continue
		}
		r.hostAddrs = make([][]netip.Addr, len(r.hosts))
		for j, h := range r.hosts {
			res, ok := cache[h]
			if !ok {
				addrs, err := l.opts.Resolve(ctx, h)
				res = hostResult{normAddrs(addrs), err}
				if err == nil && len(res.addrs) == 0 {
					res.err = errors.New("no addresses")
				}
				cache[h] = res
				if res.err != nil {
					l.warnings = append(l.warnings, fmt.Sprintf("%s: host name %q did not resolve: %v", r.Origin(), h, res.err))
				}
			}
			r.hostAddrs[j] = res.addrs
		}
		r.resolved = hostPrefixes(r.hostAddrs)
	}
	return errors.Join(errs...)
}
