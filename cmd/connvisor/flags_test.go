package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// Every flag the parser knows is in the usage, and --help is not an error.
func TestUsageListsEveryFlag(t *testing.T) {
	u := usage()
	for _, f := range runFlagTable(&runFlags{}) {
		for _, n := range f.names {
			want := "--" + n
			if len(n) == 1 {
				want = "-" + n
			}
			if !strings.Contains(u, want) {
				t.Errorf("usage does not list %s", want)
			}
		}
	}
	for _, help := range []string{"--help", "-h", "-help"} {
		if _, _, err := parseRunFlags([]string{help}, io.Discard); !errors.Is(err, errHelp) {
			t.Errorf("run %s: %v, want the usage", help, err)
		}
	}
	if code := runCommand([]string{"--help"}); code != 0 {
		t.Errorf("connvisor run --help exits %d, want 0", code)
	}
}

func TestFlagHintFromTable(t *testing.T) {
	_, _, err := parseRunFlags([]string{"--allow-ptrce", "--", "true"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "did you mean --allow-ptrace?") {
		t.Errorf("misspelt flag: %v, want a hint naming --allow-ptrace", err)
	}
}

// ctl's flags come from their table, before or after the action.
func TestCtlFlags(t *testing.T) {
	var out strings.Builder
	if code := ctlCommand([]string{"--help"}, nil, &out, io.Discard); code != 0 {
		t.Fatalf("ctl --help exits %d", code)
	}
	for _, f := range ctlFlagTable(&ctlFlags{}) {
		if !strings.Contains(out.String(), "--"+f.names[0]) {
			t.Errorf("ctl usage does not list --%s", f.names[0])
		}
	}
	cf, rest, err := parseCtlFlags([]string{"--control", "/x.sock", "add", "--after", "3", "fail", "10.0.0.1=EIO:for=1s", "--json"})
	if err != nil || cf.control != "/x.sock" || cf.after != 3 || !cf.json || strings.Join(rest, " ") != "add fail 10.0.0.1=EIO:for=1s" {
		t.Errorf("parseCtlFlags: %+v %q %v", cf, rest, err)
	}
	t.Setenv("CONNVISOR_CONTROL", "")
	if _, _, err := parseCtlFlags([]string{"stats"}); err == nil || !strings.Contains(err.Error(), "--control PATH") {
		t.Errorf("no socket: %v", err)
	}
	if _, _, err := parseCtlFlags([]string{"--contrl", "/x", "stats"}); err == nil || !strings.Contains(err.Error(), "did you mean --control?") {
		t.Errorf("misspelt flag: %v", err)
	}
}

// agent and profile: every flag of their tables is in their usage, a
// misspelt one gets a hint, and a stray argument is an error.
func TestAgentAndProfileFlags(t *testing.T) {
	tables := map[string][]runFlag{
		"agent":   agentFlagTable(&agentFlags{}),
		"profile": profileFlagTable(&profileFlags{}),
	}
	for cmd, table := range tables {
		u := flagUsage(table)
		for _, f := range table {
			if !strings.Contains(u, "--"+f.names[0]) {
				t.Errorf("%s usage does not list --%s", cmd, f.names[0])
			}
		}
		if err := parseTable(cmd, table, []string{"--help"}); !errors.Is(err, errHelp) {
			t.Errorf("%s --help: %v", cmd, err)
		}
		if err := parseTable(cmd, table, []string{"stray"}); err == nil || !strings.Contains(err.Error(), "unexpected argument") {
			t.Errorf("%s with a stray argument: %v", cmd, err)
		}
	}
	err := parseTable("agent", tables["agent"], []string{"--polcy-dir", "/x"})
	if err == nil || !strings.Contains(err.Error(), "did you mean --policy-dir?") {
		t.Errorf("misspelt agent flag: %v", err)
	}
	if !strings.Contains(usage(), "connvisor agent") || !strings.Contains(usage(), "connvisor profile") {
		t.Error("the main usage names neither agent nor profile")
	}
}

// --hosts: learn only, auto by default, checked up front, and it decides
// both whether the run learns names and whether the file names hosts.
func TestLearnHostsFlag(t *testing.T) {
	for _, c := range []struct {
		args    []string
		hosts   string
		noHosts bool
		err     string
	}{
		{[]string{"--", "true"}, "auto", false, ""},
		{[]string{"--hosts", "never", "--", "true"}, "never", true, ""},
		{[]string{"--hosts=auto", "--", "true"}, "auto", false, ""},
		{[]string{"--hosts", "always", "--", "true"}, "", false, `--hosts "always": expected auto or never`},
		{[]string{"--host", "never", "--", "true"}, "", false, "did you mean --hosts?"},
	} {
		rf, _, err := parseFlags("learn", c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || rf.hosts != c.hosts {
			t.Errorf("%q: hosts %q, %v; want %q", c.args, rf.hosts, err, c.hosts)
			continue
		}
		w := &learnWriter{rf: rf}
		if got := w.options().NoHosts; got != c.noHosts {
			t.Errorf("%q: NoHosts %v, want %v", c.args, got, c.noHosts)
		}
	}
	if _, _, err := parseRunFlags([]string{"--hosts", "never", "--", "true"}, io.Discard); err == nil || !strings.Contains(err.Error(), "is a flag of connvisor learn") {
		t.Errorf("run --hosts: %v", err)
	}
}
