package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// TestRuleSyntax: each rule form of the issue, given on the command line,
// decides a real connect. Every case denies with EACCES a destination
// whose server listens, and leaves a second server of the same kind to the
// embedded default (allowed), so a rule that matches too much or too little
// shows.
func TestRuleSyntax(t *testing.T) {
	prog := connector(t)
	for _, tc := range []struct {
		name, kind string
		rule       func(hit, miss *server) string
	}{
		{"IPv4", "tcp4", func(h, m *server) string { return fmt.Sprintf("127.0.0.1:%d", h.port()) }},
		{"IPv4 prefix", "tcp4", func(h, m *server) string { return fmt.Sprintf("127.0.0.0/8:%d", h.port()) }},
		{"IPv4 port range", "tcp4", func(h, m *server) string { return fmt.Sprintf("127.0.0.1:%d-%d", h.port(), h.port()) }},
		{"any port", "udp4", func(h, m *server) string { return fmt.Sprintf("*:%d", h.port()) }},
		{"IPv6", "tcp6", func(h, m *server) string { return fmt.Sprintf("[::1]:%d", h.port()) }},
		{"IPv6 prefix", "udp6", func(h, m *server) string { return fmt.Sprintf("[::1/128]:%d", h.port()) }},
		{"IPv4 rule, IPv4-mapped dest", "mapped", func(h, m *server) string { return fmt.Sprintf("127.0.0.1:%d", h.port()) }},
		{"unix path glob", "unix", func(h, m *server) string { return "unix:" + filepath.Dir(h.where) + "/*" }},
		{"unix abstract glob", "unix@", func(h, m *server) string { return "unix:@*" + h.where[len(h.where)-9:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == "mapped" {
				kind = "tcp4"
			}
			hit, miss := newServer(t, kind), newServer(t, kind)
			hitSpec := hit.spec()
			if tc.kind == "mapped" {
				hitSpec = []string{"tcp6", fmt.Sprintf("[::ffff:127.0.0.1]:%d", hit.port())}
			}
			rule := tc.rule(hit, miss)
			r := wrapped(t, []string{"-q", "--deny", rule + "=EACCES"}, append(append([]string{prog}, hitSpec...), miss.spec()...)...)
			if got := r.results(hitSpec[0], hitSpec[1]); !slices.Equal(got, []string{"EACCES"}) {
				t.Errorf("--deny %s: %s %s got %q, want [EACCES]\n%v", rule, hitSpec[0], hitSpec[1], got, r)
			}
			if got := r.results(miss.kind, miss.where); !slices.Equal(got, []string{"ok"}) {
				t.Errorf("--deny %s: %s %s got %q, want [ok] (no match)\n%v", rule, miss.kind, miss.where, got, r)
			}
			if n := hit.reached(); n != 0 {
				t.Errorf("denied server reached %d times", n)
			}
		})
	}
}
