// Package containers runs real containers (runc and crun, and containerd's
// ctr where it works here) from a busybox rootfs, with the seccomp profile
// `connvisor profile` writes, under a real `connvisor agent`, and checks
// what the container's programs saw and what the agent logged.
//
// Servers run on the host's loopback and the containers share the host's
// network namespace (the spec's network namespace is removed), so a test
// also sees which connections really arrived. Denied destinations are on
// loopback or in TEST-NET (192.0.2.0/24), never routed, and never reached.
//
// The runtimes and busybox-static come from Debian's packages: TestMain
// installs what is missing (as root), and a runtime that cannot be
// installed skips its cases with the reason. Every container has a unique
// name and a private state root, removed after its test.
package containers

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
)

var (
	bins *testutil.Bins
	// missing says why a tool cannot be used (by name: runc, crun, ctr,
	// busybox); absent: it can.
	missing = map[string]string{}
)

func TestMain(m *testing.M) {
	testutil.Main(testutil.Build{Name: "containers"}, func(b *testutil.Bins) int {
		bins = b
		installPackages()
		if os.Geteuid() == 0 {
			removeLeftovers()
		}
		return m.Run()
	})
}

// tools maps each tool to the Debian package that brings it.
var tools = []struct{ bin, pkg string }{
	{"runc", "runc"}, {"crun", "crun"}, {"busybox", "busybox-static"}, {"ctr", "containerd"},
}

// installPackages installs the runtimes that are missing, one package at a
// time, so that one that cannot be installed skips only its own cases.
func installPackages() {
	var need []string
	for _, t := range tools {
		if _, err := exec.LookPath(t.bin); err != nil {
			need = append(need, t.pkg)
		}
	}
	if len(need) > 0 && os.Geteuid() == 0 {
		if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "apt-get update: %v\n%s", err, out)
		}
		for _, pkg := range need {
			cmd := exec.Command("apt-get", "install", "-y", "-qq", pkg)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "apt-get install %s: %v\n%s", pkg, err, testutil.Tail(string(out), 3))
			}
		}
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t.bin); err != nil {
			why := fmt.Sprintf("%s is not installed and the Debian package %s could not be installed", t.bin, t.pkg)
			if os.Geteuid() != 0 {
				why = fmt.Sprintf("%s is not installed (package %s; the tests install it when run as root)", t.bin, t.pkg)
			}
			missing[t.bin] = why
		}
	}
	if os.Geteuid() != 0 {
		for _, t := range []string{"runc", "crun", "ctr"} {
			if missing[t] == "" {
				missing[t] = "running containers needs root"
			}
		}
	}
}
