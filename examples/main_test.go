package examples_test

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if role := os.Getenv("CONNVISOR_EXAMPLE_ROLE"); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}
