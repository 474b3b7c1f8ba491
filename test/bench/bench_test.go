package main

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

func TestMain(m *testing.M) {
	// Re-executed as the HTTP client that connvisor wraps.
	if helperMain() {
		return
	}
	os.Exit(m.Run())
}

// TestQuick runs the quick benchmarks so they cannot rot. It fails only
// when a benchmark cannot run (a build, a target, a supervisor or a
// connect outcome goes wrong), never on timing: CI machines are noisy.
func TestQuick(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connvisor and its benchmarks need Linux")
	}
	if testing.Short() {
		t.Skip("-short: the quick benchmarks take about a minute")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed: the benchmark targets are C (apt-get install gcc libc6-dev)")
	}
	cfg := quickConfig()
	cfg.Rounds = 1
	// A prebuilt binary, when the tree's own does not build at the moment.
	cfg.Connvisor = os.Getenv("CONNVISOR_BENCH_BINARY")
	var out bytes.Buffer
	err := Run(cfg, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
}
