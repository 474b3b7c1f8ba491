package policy

import (
	"context"
	"net/netip"
	"os"
	"testing"
)

func TestSmoke(t *testing.T) {
	p := Default()
	for _, s := range []string{"tcp 127.0.0.1:80", "tcp [::1]:80", "tcp [::ffff:127.0.0.1]:80", "tcp 10.0.0.1:80", "unix /x", "unix @a/b", "unix unnamed", "unspec", "netlink"} {
		d, err := ParseDest(s)
		if err != nil {
			t.Fatal(err)
		}
		dec := p.Decide(&d)
		o := "default"
		if dec.Rule != nil {
			o = dec.Rule.Origin() + " " + dec.Rule.String() + " | " + dec.Rule.Compact()
		}
		t.Logf("%s -> %v %v %s", d, dec.Action, dec.Errno, o)
	}
	res := func(ctx context.Context, h string) ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("1.2.3.4")}, nil }
	p, err := Load(nil, "../examples/policies/payments.policy", Options{ReadFile: os.ReadFile, Resolve: res})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Rules() {
		t.Logf("%s: %s | %s", r.Origin(), r, r.Compact())
	}
	t.Log(p.DefaultRule(), p.Warnings())
}
