package control

import (
	"syscall"
	"testing"

	"github.com/connvisor/connvisor/policy"
)

// TestGlobEscape: the guard rule names the socket path itself, whatever
// glob characters it holds, and nothing else.
func TestGlobEscape(t *testing.T) {
	for _, path := range []string{"/tmp/a[1]*.sock", `/tmp/b\?x=y.sock`, "/tmp/plain.sock"} {
		p, _, err := policy.Default().Insert("g", "deny unix "+globEscape(path)+" errno=EACCES", -1)
		if err != nil {
			t.Fatal(path, err)
		}
		if d := p.Decide(&policy.Dest{Family: syscall.AF_UNIX, Path: path}); d.Action != policy.Deny {
			t.Errorf("%s: %v", path, d.Action)
		}
		if d := p.Decide(&policy.Dest{Family: syscall.AF_UNIX, Path: path + "x"}); d.Action != policy.Allow {
			t.Errorf("%s x: %v", path, d.Action)
		}
	}
}
