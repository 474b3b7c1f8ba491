package supervisor

import (
	"fmt"
	"os"

	"github.com/connvisor/connvisor/policy"
)

// roleEnv names the role a re-executed test binary plays (see Main).
const roleEnv = "CONNVISOR_ROLE"

// Roles are the programs a test binary can play when it wraps itself: each
// gets the arguments SelfCommand was given and returns the exit status.
type Roles map[string]func(args []string) int

// Main is the body of a TestMain for a test binary that wraps itself: it
// plays the role SelfCommand asked for, or else runs the tests.
//
//	func TestMain(m *testing.M) { os.Exit(supervisor.Main(m, roles)) }
func Main(m interface{ Run() int }, roles Roles) int {
	name, ok := os.LookupEnv(roleEnv)
	if !ok {
		return m.Run()
	}
	role := roles[name]
	if role == nil {
		fmt.Fprintf(os.Stderr, "supervisor.Main: no role %q in this binary\n", name)
		return 2
	}
	return role(os.Args[1:])
}

// SelfCommand returns a Cmd that runs this very binary again under p, as
// role (one of the Roles given to Main), with args.
func SelfCommand(p *policy.Policy, role string, args ...string) *Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe" // Start reports it if that fails too
	}
	c := Command(p, exe, args...)
	c.Args[0] = role
	c.Env = append(os.Environ(), roleEnv+"="+role)
	return c
}
