package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/connvisor/connvisor/policy"
)

// checkCommand validates a policy file and prints its rules normalised, in
// the file form and the flag form, with warnings.
func checkCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: connvisor check FILE")
		return exitUsage
	}
	p, err := policy.Load(nil, args[0], policy.Options{ReadFile: os.ReadFile, Resolve: resolveHost})
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	for _, r := range p.Rules() {
		line := fmt.Sprintf("%-24s %s", r.Origin()+":", r.String())
		if c := r.Compact(); c != "" {
			line += "    # " + c
		}
		fmt.Fprintln(stdout, line)
	}
	if p.Audit() {
		fmt.Fprintf(stdout, "%-24s mode audit (denies nothing: what would be denied is logged as would-deny)\n", "mode:")
	}
	def := p.DefaultDecision()
	fmt.Fprintf(stdout, "%-24s default %s", "default:", def.Action)
	if def.Errno != 0 {
		fmt.Fprintf(stdout, " errno=%s", policy.ErrnoName(def.Errno))
	}
	fmt.Fprintln(stdout)
	for _, w := range p.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stderr, "%s: %d rules, ok\n", args[0], len(p.Rules()))
	return 0
}

// explainCommand prints the decision for one destination and the rule that
// made it.
func explainCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, `usage: connvisor explain FILE DEST [host=NAME...]   (DEST like "tcp 10.20.3.4:5432" or "unix /run/x.sock"; host=: a name the program's DNS answers gave for the address)`)
		return exitUsage
	}
	p, err := policy.Load(nil, args[0], policy.Options{ReadFile: os.ReadFile, Resolve: resolveHost})
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	// host=NAME words are the names learned from DNS answers for the
	// address, as the supervisor passes them.
	var words, names []string
	for _, w := range args[1:] {
		for _, f := range strings.Fields(w) {
			if h, ok := strings.CutPrefix(f, "host="); ok {
				names = append(names, strings.TrimSuffix(strings.ToLower(h), "."))
				continue
			}
			words = append(words, f)
		}
	}
	d, err := policy.ParseDest(strings.Join(words, " "))
	if err != nil {
		fmt.Fprintf(stderr, "connvisor explain: %v\n", err)
		return exitUsage
	}
	dec := p.Count(&d, names, p.DecideNamed(&d, names)) // as the first such connect
	out := dec.Action.String()
	if dec.Errno != 0 {
		out += " errno=" + policy.ErrnoName(dec.Errno)
	}
	if dec.WouldDeny {
		out = "would-deny errno=" + policy.ErrnoName(dec.WouldErrno) + " (mode audit: allowed)"
		if dec.Rule != nil && dec.Rule.Decision().Blackhole {
			out = "would-deny blackhole (mode audit: allowed)"
		}
	}
	switch dec.HostVia {
	case policy.ViaAnswer:
		out += " (host " + dec.Host + ", from the program's DNS answer)"
	case policy.ViaLoad:
		out += " (host " + dec.Host + ", resolved at load)"
	}
	switch {
	case dec.Rule != nil:
		fmt.Fprintf(stdout, "%s: %s by %s: %s\n", d, out, dec.Rule.Origin(), dec.Rule.String())
	case policy.NotEgress(&d):
		fmt.Fprintf(stdout, "%s: %s (not egress: no default applies, only a rule naming it)\n", d, out)
	default:
		fmt.Fprintf(stdout, "%s: %s by the default\n", d, out)
	}
	return 0
}
