package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Changes made to a running policy: one rule added or removed, schedules
// restarted. Each returns a new policy (or changes only the shared schedule
// state, for Reset), so a supervisor swaps it in atomically and a change
// that does not parse leaves the policy in force untouched.

// ErrNoRule is returned for a rule id that the policy does not hold.
var ErrNoRule = errors.New("no rule with this id")

// Insert returns a policy with one more rule: line, a rule line of the
// file language ("fail tcp 10.0.0.1 port 5432 errno=ECONNREFUSED for=10s",
// compact words allowed), in front of p's rules when after is negative,
// else right after the rule whose ID is after. The new rule gets the next
// free id, its Origin is origin followed by "#ID" ("api#7"), and its
// schedule and time window start now; the rules already there are shared
// and keep theirs. An error names the column in line as "NAME:1:COL"
// where NAME is origin.
func (p *Policy) Insert(origin, line string, after int64) (*Policy, *Rule, error) {
	pos := 0
	if after >= 0 {
		i := slices.IndexFunc(p.rules, func(r *Rule) bool { return r.id == uint64(after) })
		if i < 0 {
			return nil, nil, fmt.Errorf("insert after rule %d: %w", after, ErrNoRule)
		}
		pos = i + 1
	}
	if strings.ContainsAny(line, "\n\r") {
		return nil, nil, errors.New("a rule is one line (send a whole policy to replace the policy)")
	}
	toks := tokenize(line)
	if len(toks) == 0 {
		return nil, nil, fmt.Errorf("%s:1: empty rule (expected a rule like fail 127.0.0.1:5432=ECONNREFUSED:for=10s)", origin)
	}
	w := where{file: origin, line: 1, col: toks[0].col}
	l := &loader{opts: Options{Resolve: p.resolve, Now: p.now}}
	switch toks[0].s {
	case "default", "include", "resolve":
		return nil, nil, w.at(toks[0].col, "%s is a policy line, not a rule: replace the whole policy to change it", toks[0].s)
	}
	l.line(toks, w, strings.TrimSpace(line))
	if len(l.errs) > 0 {
		return nil, nil, errors.Join(l.errs...)
	}
	if err := l.resolveAll(context.Background()); err != nil {
		return nil, nil, err
	}
	r := l.rules[0]
	r.id = p.nextID
	r.origin = origin + "#" + strconv.FormatUint(r.id, 10)
	r.startClock(p.now().UnixNano())
	rules := slices.Insert(slices.Clone(p.rules), pos, r)
	np := p.rebuild(rules, l.warnings)
	return np, r, nil
}

// Remove returns a policy without the rule whose ID is id.
func (p *Policy) Remove(id uint64) (*Policy, error) {
	i := slices.IndexFunc(p.rules, func(r *Rule) bool { return r.id == id })
	if i < 0 {
		return nil, fmt.Errorf("remove rule %d: %w", id, ErrNoRule)
	}
	return p.rebuild(slices.Delete(slices.Clone(p.rules), i, i+1), nil), nil
}

// rebuild makes a policy of rules with p's default, seed, resolver and
// clock; the next id never goes back, so an id names one rule for the
// life of the run.
func (p *Policy) rebuild(rules []*Rule, warnings []string) *Policy {
	np := build(rules, p.defRule, p.seed, p.interval, p.resolve, append(slices.Clone(p.loadWarnings), warnings...), p.now)
	np.def = p.def
	np.nextID = max(np.nextID, p.nextID)
	return np
}

// Reset restarts every schedule of p: match counters from 0 (so when=1..2
// fails the next two connects again) and time windows from now. The
// rules are shared with the policies p was derived from, which see the
// same reset.
func (p *Policy) Reset() {
	now := p.now().UnixNano()
	for _, r := range p.rules {
		if r.count != nil {
			r.count.Store(0)
		}
		if r.start != nil {
			r.start.Store(now)
		}
	}
}

// InWindow reports whether the rule's time window is open at the policy's
// clock now (always true for a rule without one), for displays.
func (p *Policy) InWindow(r *Rule) bool {
	return !r.winSet || r.inWindow(p.now().UnixNano())
}

// Succeed numbers the rules of next, a policy just loaded to replace p
// and not yet in force, after p's ids, so that an id names one rule for
// the life of a run across replaced policies too. It changes next.
func (p *Policy) Succeed(next *Policy) {
	for _, r := range next.rules {
		r.id += p.nextID
	}
	next.nextID += p.nextID
}
