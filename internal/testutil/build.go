package testutil

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Module is the import path of this repository's module.
const Module = "github.com/connvisor/connvisor"

// GoBuild builds the package pkg of this module (an import path below
// Module, such as "cmd/connvisor") into out, and returns what go build
// printed when it fails.
func GoBuild(out, pkg string) error {
	b, err := exec.Command("go", "build", "-o", out, Module+"/"+pkg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// BuildConnvisor builds the connvisor command into dir, for the test
// packages that run the real binary, and returns its path.
func BuildConnvisor(dir string) (string, error) {
	bin := filepath.Join(dir, "connvisor")
	return bin, GoBuild(bin, "cmd/connvisor")
}

// RepoRoot is the repository's top directory, found from this file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
