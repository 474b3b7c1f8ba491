package policy

import (
	"strings"
	"testing"
)

// A CIDR written with host bits matches its whole network: said, not
// silently widened.
func TestWarnHostBits(t *testing.T) {
	p, err := Load([]FlagRule{
		{Flag: "allow", Value: "10.20.3.4/16:5432"},
		{Flag: "deny", Value: "[fd00::1/8]:53"},
		{Flag: "allow", Value: "10.30.0.0/16"},
	}, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(p.Warnings(), "\n")
	for _, want := range []string{"10.20.3.4/16 has host bits set and matches the whole network 10.20.0.0/16", "10.20.3.4/32", "fd00::1/8", "fd00::1/128"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings do not say %q:\n%s", want, w)
		}
	}
	if strings.Contains(w, "10.30.0.0/16 has host bits") {
		t.Errorf("a clean CIDR warned:\n%s", w)
	}
}

// Go callers may copy a command line: "--fail" names the flag "fail".
func TestFlagRuleWithDashes(t *testing.T) {
	p, err := Load([]FlagRule{{Flag: "--fail", Value: "127.0.0.1:5432=ECONNREFUSED"}, {Flag: "-default", Value: "allow"}}, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Rules()[0]; r.Action() != Fail || r.Origin() != "--fail" {
		t.Errorf("rule %s from %s, want a fail rule from --fail", r, r.Origin())
	}
	if p.UsesProbability() {
		t.Error("UsesProbability without probability=")
	}
	q, err := Load([]FlagRule{{Flag: "fail", Value: "any=ECONNREFUSED:probability=0.5"}}, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !q.UsesProbability() {
		t.Error("UsesProbability false with probability=")
	}
}
