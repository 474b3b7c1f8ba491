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
