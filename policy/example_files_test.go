package policy

import (
	"os"
	"testing"
)

// TestExamplePolicies: the worked examples load, warn about nothing, and
// decide as their comments say.
func TestExamplePolicies(t *testing.T) {
	opts := testOptions(nil)
	opts.ReadFile = os.ReadFile
	for _, file := range []string{"../examples/policies/payments.policy", "../examples/policies/chaos.policy", "../examples/policies/common.policy", "../examples/policies/learned.policy"} {
		p, err := Load(nil, file, opts)
		if err != nil {
			t.Fatal(err)
		}
		if w := p.Warnings(); len(w) > 0 {
			t.Errorf("%s: warnings %q", file, w)
		}
	}
	p, err := Load(nil, "../examples/policies/payments.policy", opts)
	if err != nil {
		t.Fatal(err)
	}
	for dst, want := range map[string]string{
		"tcp 10.20.3.4:5432":     "allow@12",
		"tcp 169.254.169.254:80": "deny ENETUNREACH@7",
		"tcp 192.0.2.10:443":     "allow@14",
		"tcp 8.8.8.8:443":        "log@20",
		"tcp 8.8.8.8:80":         "deny EACCES@0",
		"unix @x":                "deny EPERM@17",
		"unix unnamed":           "allow@6",
	} {
		if got := describe(decided(p, dest(t, dst))); got != want {
			t.Errorf("%s: %s, want %s", dst, got, want)
		}
	}
	// learned.policy is what connvisor learn wrote, then --merge added to.
	p, err = Load(nil, "../examples/policies/learned.policy", opts)
	if err != nil {
		t.Fatal(err)
	}
	for dst, want := range map[string]string{
		"tcp 127.0.0.1:8002 exe=/usr/bin/curl":                               "allow@8",
		"tcp 127.0.0.1:8002 exe=/usr/bin/wget":                               "deny EACCES@0",
		"unix /tmp/tmp.Xy12/app.sock exe=/usr/bin/curl":                      "allow@10",
		"tcp 127.0.0.1:8443 exe=/usr/bin/wget":                               "allow@17",
		"tcp 127.0.0.1:8080 exe=/root/.pyenv/versions/3.11.7/bin/python3.11": "allow@9",
	} {
		if got := describe(decided(p, dest(t, dst))); got != want {
			t.Errorf("learned.policy: %s: %s, want %s", dst, got, want)
		}
	}
}
