package control_test

import (
	"log"

	"github.com/connvisor/connvisor/control"
	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// ForCommand does all of Example's wiring for a Cmd, as `connvisor run`
// does.
func ExampleForCommand() {
	cmd := supervisor.Command(policy.Default(), "./service")
	srv, err := control.ForCommand(cmd, "/tmp/cv.sock", "127.0.0.1:9464", control.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	if err := cmd.Run(); err != nil {
		log.Fatal(err)
	}
}

// A holder of a supervisor serves the control API for it: the server
// listens before the command starts (so the tree is kept off the socket
// from its first connect) and is fed every decision.
func Example() {
	cmd := supervisor.Command(policy.Default(), "./service")
	srv := control.New(cmd, control.Config{})
	cmd.OnDecision = srv.Observe
	if err := srv.Listen("/tmp/cv.sock"); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.ServeMetrics("127.0.0.1:9464"); err != nil {
		log.Fatal(err)
	}
	if err := cmd.Run(); err != nil {
		log.Fatal(err)
	}
}
