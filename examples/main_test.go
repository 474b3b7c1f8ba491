package examples_test

import (
	"os"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
	"github.com/connvisor/connvisor/supervisor"
)

// The wrapped programs are this test binary, playing one of roles.
func TestMain(m *testing.M) { os.Exit(supervisor.Main(m, roles)) }

// TestUnprivileged runs every example again as user nobody with no
// capabilities: the examples are what a test author who is not root
// copies first.
func TestUnprivileged(t *testing.T) {
	testutil.RerunUnprivileged(t, "^Example")
}
