package agent

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestKubernetesExampleProfile: the SeccompProfile example is still what
// `connvisor profile` writes.
func TestKubernetesExampleProfile(t *testing.T) {
	b, err := os.ReadFile("../examples/kubernetes/seccompprofile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, spec, ok := strings.Cut(string(b), "\nspec:\n")
	if !ok {
		t.Fatal("no spec: in the example")
	}
	want, _, err := Profile(ProfileOptions{ListenerPath: "/run/connvisor/agent.sock", Metadata: "web"})
	if err != nil {
		t.Fatal(err)
	}
	var got, wantV any
	if err := json.Unmarshal([]byte(spec), &got); err != nil {
		t.Fatalf("the example's spec is not the JSON profile: %v", err)
	}
	json.Unmarshal(want, &wantV)
	if !reflect.DeepEqual(got, wantV) {
		t.Errorf("examples/kubernetes/seccompprofile.yaml differs from `connvisor profile --listener /run/connvisor/agent.sock --metadata web`: regenerate it")
	}
}
