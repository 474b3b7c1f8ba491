package dns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

// connvisor learn names the hosts the program's own DNS answers named:
// the written policy allows good.test by name (its address is loopback,
// so with allow-private), the resolver by address; enforced, it lets the
// program resolve and connect again, and denies another address and
// another name for the same address.
func TestLearnNamesHosts(t *testing.T) {
	e := setup(t, "")
	connvisor := bins.Connvisor
	resolveAndDial := func(host string) []string {
		return []string{"env", "GODEBUG=netdns=go", dialer(), "repeat", host, "8080", "2", "10ms"}
	}
	learned := filepath.Join(t.TempDir(), "learned.policy")
	r := e.run(t, false, append([]string{connvisor, "learn", "--quiet", "--no-dates", "-o", learned, "--"}, resolveAndDial("good.test")...)...)
	if !strings.HasPrefix(r.Stdout, "ok 2 fail 0") {
		t.Fatalf("learn run: %s\n%s", r.Stdout, testutil.Tail(r.Stderr, 12))
	}
	text, err := os.ReadFile(learned)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nallow tcp good.test allow-private port 8080 ",
		"seen at 127.2.0.1\n",
		"\nallow udp " + server + " port 53 ",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the learned policy lacks %q:\n%s", want, text)
		}
	}
	t.Logf("learned:\n%s", text)
	if strings.Contains(string(text), "127.2.0.1 port") {
		t.Errorf("the learned policy allows good.test's address by number:\n%s", text)
	}

	enforce := func(host string) testutil.Result {
		return e.run(t, false, append([]string{connvisor, "run", "--log-format", "json", "--policy", learned, "--"}, resolveAndDial(host)...)...)
	}
	if r := enforce("good.test"); !strings.HasPrefix(r.Stdout, "ok 2 fail 0") || !learnedAllow(r.Stderr, 8080) {
		t.Errorf("good.test under the learned policy: %s\n%s", r.Stdout, testutil.Tail(r.Stderr, 12))
	}
	for _, other := range []string{
		"127.3.0.1", // another address
		"evil.test", // another name, answering good.test's address
	} {
		if r := enforce(other); !strings.HasPrefix(r.Stdout, "ok 0 fail 2") || !strings.Contains(r.Stdout, "permission denied") {
			t.Errorf("%s under the learned policy: %s, want every connect denied with EACCES\n%s", other, r.Stdout, testutil.Tail(r.Stderr, 12))
		}
	}

	// --hosts=never: the same run learns the address.
	r = e.run(t, false, append([]string{connvisor, "learn", "--quiet", "--no-dates", "--hosts=never", "-o", learned, "--"}, resolveAndDial("good.test")...)...)
	text, _ = os.ReadFile(learned)
	if !strings.HasPrefix(r.Stdout, "ok 2 fail 0") || !strings.Contains(string(text), "\nallow tcp 127.2.0.1 port 8080 ") || strings.Contains(string(text), "allow tcp good.test") {
		t.Errorf("--hosts=never: %s\n%s\n%s", r.Stdout, text, testutil.Tail(r.Stderr, 12))
	}
}
