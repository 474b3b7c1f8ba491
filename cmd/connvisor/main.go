// Command connvisor runs a program with every connect(2) of its process
// tree under a policy.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	// The supervisor package turns this binary into its own child stub.
	_ "github.com/connvisor/connvisor/supervisor"
)

// usageFormat is the usage; %s is the run flags, from their table.
const usageFormat = `connvisor puts a program's outgoing connections under a policy.

Usage:
  connvisor run [flags] -- CMD [ARGS...]   run CMD with its connects under the policy
  connvisor learn [-o FILE] [--merge FILE] [learn flags] [run flags] -- CMD [ARGS...]
                                           run CMD, allowing every connect, and write the
                                           policy that allows what it did
  connvisor check FILE                     validate a policy file and print its rules
  connvisor explain FILE DEST [host=NAME]  show the decision for DEST ("tcp 10.0.0.1:443", "unix /run/x.sock")
  connvisor ctl [flags] ACTION [ARGS]      drive a running connvisor run --control PATH (see ctl --help)
  connvisor agent --listen PATH [--policy-dir DIR] [--policy FILE]
                                           supervise containers (runc, crun, containerd)
  connvisor profile [--listener PATH] [--metadata NAME] [--base FILE]
                                           print the OCI seccomp profile that hands them over
  connvisor version

Run flags (rules from flags come first, in order, then the file's):
%s
Learn flags (learn also takes the run flags; with --policy or --merge the run is
under that policy in audit mode):
%s
The learned file is written at exit, on SIGINT and SIGTERM (after forwarding them) and
on SIGUSR1, atomically. learn exits with the command's status (125: not written).

RULE: any | IPv4[/LEN][:PORTS] | [IPv6[/LEN]][:PORTS] | *:PORTS | unix:PATHGLOB | unix:@ABSTRACTGLOB
      PORTS is N, N-M, a list, or *.

With no policy flags the embedded default applies: loopback and UNIX sockets are allowed,
every other destination is denied with EPERM. An explicit --default replaces it entirely.

connvisor forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to CMD, as if it were not there;
SIGUSR2 (or --watch) reloads --policy without touching CMD.

Examples:
  connvisor run -- curl http://127.0.0.1:8080/
  connvisor run --deny 127.0.0.1:8080=ECONNREFUSED -- curl http://127.0.0.1:8080/
  connvisor run --policy examples/policies/payments.policy --log-format json -- ./server
  connvisor run --fail '127.0.0.1:5432=ECONNREFUSED:when=1..2' -- ./client
  connvisor learn -o app.policy -- ./client           # then: connvisor check app.policy
  connvisor run --audit --policy app.policy -- ./client
  connvisor learn --merge app.policy -- ./client --new-feature
`

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage())
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(args[1:])
	case "learn":
		return learnCommand(args[1:])
	case "check":
		return checkCommand(args[1:], os.Stdout, os.Stderr)
	case "explain":
		return explainCommand(args[1:], os.Stdout, os.Stderr)
	case "ctl":
		return ctlCommand(args[1:], os.Stdin, os.Stdout, os.Stderr)
	case "agent":
		return agentCommand(args[1:])
	case "profile":
		return profileCommand(args[1:])
	case "version", "--version":
		fmt.Println("connvisor", version())
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage())
		return 0
	}
	fmt.Fprintf(os.Stderr, "connvisor: unknown command %q (expected run, learn, check, explain, ctl, agent, profile or version)\n", args[0])
	return exitUsage
}

// Exit codes of connvisor's own failures, apart from the command's.
const (
	exitUsage    = 2
	exitInternal = 125 // connvisor could not run the command
)

func usage() string { return fmt.Sprintf(usageFormat, runFlagUsage(false), runFlagUsage(true)) }

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
