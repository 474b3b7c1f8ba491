package learn

import (
	"strings"

	"github.com/connvisor/connvisor/policy"
)

// MergeResult is what Merge did.
type MergeResult struct {
	// Text is the merged policy: the existing text unchanged, then a
	// block of the added rules (Text is the existing text when nothing
	// was added).
	Text []byte
	// Added are the added rule lines, comments included.
	Added []string
	// Refused are the destinations the run needed that a rule of the
	// policy denies on purpose: Merge adds nothing for them, because an
	// allow after the deny could never match and one before it would
	// overrule a decision someone wrote down. One line each, naming the
	// rule.
	Refused []string
}

// Merge adds to a policy what the run needed and the policy does not
// allow. existing is the policy file's text and p the policy it loads to
// (its includes resolved). The destinations p permits are left out; those
// that fall to a denying default get rules, written as Write writes them,
// in a block appended after the existing text, which is kept byte for
// byte (a rule at the end matches only what no earlier rule does, which
// is exactly what fell to the default). Destinations that a deny or fail
// rule refuses are reported in Refused and not added. A destination the
// run's DNS answers named is asked about with its name
// (policy.PermitsNamed), as the supervisor decides it when enforcing.
func (r *Recorder) Merge(existing []byte, p *policy.Policy, opts Options) MergeResult {
	s := r.snapshot()
	missing := map[key]usage{}
	refusedBy := map[string]string{}
	for k, u := range s.seen {
		d := k.dest()
		var names []string
		if k.host != "" {
			names = []string{k.host}
		}
		ok, by := p.PermitsNamed(&d, names)
		switch {
		case ok:
		case by != nil:
			d.Exe = ""
			dst := d.String()
			if k.host != "" {
				dst += " (" + k.host + ")"
			}
			refusedBy[dst] = by.Origin() + ": " + by.String()
		default:
			missing[k] = u
		}
	}
	res := MergeResult{Text: existing}
	for _, dst := range sortedKeys(refusedBy) {
		res.Refused = append(res.Refused, dst+" is denied by "+refusedBy[dst])
	}
	rs := rules(missing, opts)
	if len(rs) == 0 && s.dropped == 0 {
		return res
	}
	var b strings.Builder
	b.Write(existing)
	if len(existing) > 0 && !strings.HasSuffix(string(existing), "\n") {
		b.WriteByte('\n')
	}
	b.WriteString("\n# Added by connvisor learn --merge")
	if !opts.NoDates {
		b.WriteString(", " + stamp(opts.Now))
	}
	b.WriteString(", from a run of:\n#   " + commandLine(opts.Command) + "\n")
	writeTruncation(&b, s)
	writeHostNote(&b, rs)
	var block strings.Builder
	writeRules(&block, rs, opts.NoDates)
	b.WriteString(block.String())
	res.Text = []byte(b.String())
	for _, line := range strings.Split(strings.TrimSuffix(block.String(), "\n"), "\n") {
		if line != "" {
			res.Added = append(res.Added, line)
		}
	}
	return res
}
