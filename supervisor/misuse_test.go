package supervisor_test

import (
	"strings"
	"syscall"
	"testing"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// Misuse of the Go API is an error that says what to do, never a panic.
func TestMisuseErrors(t *testing.T) {
	var bare supervisor.Cmd
	if err := bare.FailNext("127.0.0.1:9", 1, syscall.ECONNREFUSED); err == nil || !strings.Contains(err.Error(), "no policy") {
		t.Errorf("FailNext without a policy: %v", err)
	}
	cmd := supervisor.Command(policy.Default(), "true")
	if err := cmd.FailNext("127.0.0.1:9", 1, 0); err == nil || !strings.Contains(err.Error(), "positive errno") {
		t.Errorf("FailNext with errno 0: %v", err)
	}
	if err := cmd.FailNext("127.0.0.1:9", 0, syscall.ECONNREFUSED); err == nil {
		t.Error("FailNext with n 0: no error")
	}
	if err := cmd.FailNext("127.0.0.1:9", 1, syscall.ECONNREFUSED); err != nil {
		t.Errorf("FailNext before Start: %v", err)
	}
	err := supervisor.Command(policy.Default(), "connvisor-no-such-command").Run()
	if code := supervisor.ExitCode(err); code != 127 {
		t.Errorf("ExitCode for a missing command = %d (%v), want 127 as the CLI", code, err)
	}
}
