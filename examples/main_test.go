package examples_test

import (
	"os"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

func TestMain(m *testing.M) {
	if role := os.Getenv("CONNVISOR_EXAMPLE_ROLE"); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestUnprivileged runs every example again as user nobody with no
// capabilities: the examples are what a test author who is not root
// copies first.
func TestUnprivileged(t *testing.T) {
	testutil.RerunUnprivileged(t, "^Example")
}
