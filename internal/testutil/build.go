package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Module is the import path of this repository's module.
const Module = "github.com/connvisor/connvisor"

// Build is what a test binary builds before its tests run (Main).
type Build struct {
	// Name names the directory: connvisor-NAME-*.
	Name string
	// Programs are Go main packages below Module, built beside connvisor,
	// each under its last path element: "test/targets/goconnector" is
	// Bins.Path("goconnector").
	Programs []string
	// Race builds connvisor and the programs with -race.
	Race bool
	// Shared lets every user read the directory and run the binaries
	// (0755): for tests whose programs drop to nobody.
	Shared bool
	// Connvisor, when set, is a connvisor binary to test instead of
	// building one (an older release, another tree).
	Connvisor string
}

// Bins is the directory that holds a test binary's programs.
type Bins struct {
	Dir       string
	Connvisor string // the connvisor binary
}

// Path is the program name in the directory.
func (b *Bins) Path(name string) string { return filepath.Join(b.Dir, name) }

// Main is the body of a test package's TestMain: it builds what b says
// into a fresh directory, calls run with it (run builds anything else,
// sets the package's variables and returns m.Run()), removes the
// directory and exits with run's status. A build that fails exits 1 with
// go build's output. In a test binary re-run by RerunUnprivileged it
// builds nothing: the binaries are the copies in EnvDir.
func Main(b Build, run func(*Bins) int) {
	os.Exit(b.main(run))
}

func (b Build) main(run func(*Bins) int) int {
	if Unprivileged() {
		dir := os.Getenv(EnvDir)
		return run(&Bins{Dir: dir, Connvisor: filepath.Join(dir, "connvisor")})
	}
	dir, err := os.MkdirTemp("", "connvisor-"+b.Name+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if b.Shared {
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	bins := &Bins{Dir: dir, Connvisor: b.Connvisor}
	pkgs := b.Programs
	if bins.Connvisor == "" {
		bins.Connvisor = bins.Path("connvisor")
		pkgs = append([]string{"cmd/connvisor"}, pkgs...)
	}
	if err := goBuild(dir+string(filepath.Separator), b.Race, pkgs...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return run(bins)
}

// goBuild builds the packages pkgs of this module (import paths below
// Module) with one go build: out is a file for one package, a directory
// (ending in a separator) for several.
func goBuild(out string, race bool, pkgs ...string) error {
	if len(pkgs) == 0 {
		return nil
	}
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	for _, p := range pkgs {
		args = append(args, Module+"/"+p)
	}
	b, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %v: %v\n%s", pkgs, err, b)
	}
	return nil
}

// GoBuild builds the package pkg of this module (an import path below
// Module, such as "cmd/connvisor") into out, and returns what go build
// printed when it fails.
func GoBuild(out, pkg string) error { return goBuild(out, false, pkg) }

// BuildConnvisor builds the connvisor command into dir, for the test
// packages that build it only when a test needs it, and returns its path.
func BuildConnvisor(dir string) (string, error) {
	bin := filepath.Join(dir, "connvisor")
	return bin, GoBuild(bin, "cmd/connvisor")
}

// CC compiles a C program with the compiler cc (gcc, musl-gcc) into the
// directory as name, with args (flags, sources, libraries), and returns
// its path; the error carries the compiler's output.
func (b *Bins) CC(cc, name string, args ...string) (string, error) {
	out := b.Path(name)
	msg, err := exec.Command(cc, append([]string{"-o", out}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", cc, name, err, msg)
	}
	return out, nil
}

// RepoRoot is the repository's top directory, found from this file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
