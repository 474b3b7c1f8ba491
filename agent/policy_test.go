package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestPolicySource: listenerMetadata, then the annotation, then --policy;
// a name that is not a plain file of the directory, or no policy at all,
// is refused.
func TestPolicySource(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"web.policy", "db", "fallback.policy"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("allow any\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	fallback := filepath.Join(dir, "fallback.policy")
	st := func(meta, ann string) specs.ContainerProcessState {
		s := specs.ContainerProcessState{Metadata: meta, State: specs.State{ID: "c"}}
		if ann != "" {
			s.State.Annotations = map[string]string{PolicyAnnotation: ann}
		}
		return s
	}
	for _, c := range []struct {
		name     string
		fallback string
		state    specs.ContainerProcessState
		want     string // a file, or "error: ..." naming the refusal
	}{
		{"metadata", fallback, st("web", "db"), "web.policy"},
		{"metadata with the suffix", "", st("web.policy", ""), "web.policy"},
		{"annotation", fallback, st("", "db"), "db"},
		{"fallback", fallback, st("", ""), "fallback.policy"},
		{"none", "", st("", ""), "error: no policy"},
		{"missing name, no fallback taken", fallback, st("nope", ""), "error: not in"},
		{"path in the name", fallback, st("../web.policy", ""), "error: not a file name"},
		{"dot dot", fallback, st("..", ""), "error: not a file name"},
		{"a directory", fallback, st("sub", ""), "error: not in"},
		{"empty annotation", fallback, st("", " "), "error: not in"},
	} {
		a := &Agent{cfg: Config{PolicyDir: dir, PolicyFile: c.fallback}}
		got, err := a.policySource(c.state)
		if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q, %v; want an error naming %q", c.name, got, err, want)
			}
			continue
		}
		if err != nil || got != filepath.Join(dir, c.want) {
			t.Errorf("%s: %q, %v; want %s", c.name, got, err, c.want)
		}
	}
	a := &Agent{cfg: Config{}}
	if _, err := a.policySource(st("web", "")); err == nil || !strings.Contains(err.Error(), "no --policy-dir") {
		t.Errorf("a name without --policy-dir: %v", err)
	}
}
