package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.policy")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckAndExplain(t *testing.T) {
	pol := writePolicy(t, `default deny errno=EACCES
allow tcp 10.20.0.0/16 port 5432
deny tcp 10.20.3.4 port 5432 errno=ECONNREFUSED
allow unix /run/postgresql/*
allow tcp *.cdn.example port 443
`)
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings, in order
		stderr   []string
		noStdout bool
	}{
		{name: "check prints both forms and warns about the shadowed rule",
			args:   []string{"check", pol},
			stdout: []string{"allow tcp 10.20.0.0/16 port 5432", "--allow tcp:10.20.0.0/16:5432", "default deny errno=EACCES"},
			stderr: []string{"test.policy:3", "never match", "4 rules, ok"}},
		{name: "explain names the rule",
			args:   []string{"explain", pol, "tcp", "10.20.3.4:5432"},
			stdout: []string{"tcp 10.20.3.4:5432: allow by ", "test.policy:2"}},
		{name: "explain falls to the default",
			args:   []string{"explain", pol, "udp 8.8.8.8:53"},
			stdout: []string{"deny errno=EACCES by the default"}},
		{name: "explain unix",
			args:   []string{"explain", pol, "unix /run/postgresql/.s.PGSQL.5432"},
			stdout: []string{"allow by", "test.policy:4"}},
		{name: "explain a learned name",
			args:   []string{"explain", pol, "tcp 198.51.100.7:443", "host=Edge.CDN.example."},
			stdout: []string{"allow (host edge.cdn.example, from the program's DNS answer) by", "test.policy:5"}},
		{name: "explain a learned name no rule lists",
			args:   []string{"explain", pol, "tcp 198.51.100.7:443 host=cdn.example"},
			stdout: []string{"deny errno=EACCES (host cdn.example, from the program's DNS answer) by the default"}},
		{name: "explain bad destination",
			args: []string{"explain", pol, "tcp nowhere"}, code: exitUsage, noStdout: true,
			stderr: []string{"connvisor explain:"}},
		{name: "check needs a file",
			args: []string{"check"}, code: exitUsage, noStdout: true, stderr: []string{"usage: connvisor check FILE"}},
		{name: "check missing file",
			args: []string{"check", filepath.Join(t.TempDir(), "nope.policy")}, code: 1, noStdout: true,
			stderr: []string{"nope.policy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errw strings.Builder
			var code int
			switch tt.args[0] {
			case "check":
				code = checkCommand(tt.args[1:], &out, &errw)
			case "explain":
				code = explainCommand(tt.args[1:], &out, &errw)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errw.String())
			}
			assertInOrder(t, "stdout", out.String(), tt.stdout)
			assertInOrder(t, "stderr", errw.String(), tt.stderr)
			if tt.noStdout && out.Len() > 0 {
				t.Errorf("unexpected stdout: %s", out.String())
			}
		})
	}
}

func TestCheckAndExplainAudit(t *testing.T) {
	pol := writePolicy(t, "mode audit\ndefault deny errno=EACCES\nallow tcp 10.0.0.1\nfail tcp 10.0.0.2 blackhole\n")
	var out, errw strings.Builder
	if code := checkCommand([]string{pol}, &out, &errw); code != 0 {
		t.Fatalf("check: exit %d: %s", code, errw.String())
	}
	assertInOrder(t, "check", out.String(), []string{"mode audit", "default deny errno=EACCES"})
	for dst, want := range map[string]string{
		"tcp 10.0.0.3:1": "tcp 10.0.0.3:1: would-deny errno=EACCES (mode audit: allowed) by the default",
		"tcp 10.0.0.2:1": "would-deny blackhole (mode audit: allowed) by ",
		"tcp 10.0.0.1:1": "tcp 10.0.0.1:1: allow by ",
	} {
		out.Reset()
		explainCommand([]string{pol, dst}, &out, &errw)
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain %s: %q, want %q", dst, out.String(), want)
		}
	}
}

// TestLearnFlags: learn's own flags belong to learn only, and bad values
// are refused before anything runs.
func TestLearnFlags(t *testing.T) {
	rf, cmd, err := parseFlags("learn", []string{"-o", "x.policy", "--per-exe", "--collapse-ipv4", "24", "--policy", "p", "--", "curl"})
	if err != nil || rf.out != "x.policy" || !rf.perExe || rf.collapse4 != 24 || rf.policyFile != "p" || cmd[0] != "curl" {
		t.Fatalf("parse: %+v %q %v", rf, cmd, err)
	}
	for _, tt := range []struct {
		sub  string
		args []string
		want string
	}{
		{"run", []string{"--per-exe", "--", "true"}, "--per-exe is a flag of connvisor learn"},
		{"learn", []string{"--collapse-ipv4", "33", "--", "true"}, "--collapse-ipv4 33: expected a prefix length from 1 to 32"},
		{"learn", []string{"--collapse-ipv6", "-1", "--", "true"}, "--collapse-ipv6 -1"},
		{"learn", []string{"-o", "", "--", "true"}, "-o needs a file name"},
		{"learn", []string{"--per-ex", "--", "true"}, "did you mean --per-exe?"},
		{"learn", []string{"-o", "x"}, "no command given: connvisor learn"},
		{"run", []string{"--decision-log", "-1", "--", "true"}, "--decision-log -1: expected a number of decisions from 1 to 1048576"},
		{"run", []string{"--decision-log", "2000000", "--", "true"}, "--decision-log 2000000"},
		{"run", []string{"--decision-logs", "5", "--", "true"}, "did you mean --decision-log?"},
	} {
		_, _, err := parseFlags(tt.sub, tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %q: %v, want %q", tt.sub, tt.args, err, tt.want)
		}
	}
}

func TestCheckReportsErrorPosition(t *testing.T) {
	pol := writePolicy(t, "allow tcp 10.0.0.0/8\ndeny 10.1.2.3 errno=ECONREFUSED\n")
	var out, errw strings.Builder
	if code := checkCommand([]string{pol}, &out, &errw); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	assertInOrder(t, "stderr", errw.String(), []string{"test.policy:2:", `unknown errno "ECONREFUSED"`, "did you mean ECONNREFUSED?"})
}

func TestRunFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--dney", "x", "--", "true"}, "did you mean --deny?"},
		{[]string{"--log-format", "xml", "--", "true"}, "expected console or json"},
		{[]string{"--allow", "any"}, "no command given"},
		{[]string{"--watch", "--", "true"}, "--watch needs --policy"},
		{[]string{"--mode", "fast", "--", "true"}, "expected emulate or continue"},
	}
	for _, tt := range tests {
		_, _, err := parseRunFlags(tt.args, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseRunFlags(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
	rf, cmd, err := parseRunFlags([]string{"--deny", "10.0.0.1=EACCES", "--allow", "any", "--", "curl", "-v"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rf.rules) != 2 || rf.rules[0].Flag != "deny" || rf.rules[1].Flag != "allow" {
		t.Errorf("rules lost their command-line order: %+v", rf.rules)
	}
	if strings.Join(cmd, " ") != "curl -v" {
		t.Errorf("command = %q", cmd)
	}
}

func assertInOrder(t *testing.T, what, got string, want []string) {
	t.Helper()
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("%s lacks %q (in order):\n%s", what, w, got)
			return
		}
		rest = rest[i+len(w):]
	}
}
