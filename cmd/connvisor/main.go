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

const usage = `connvisor puts a program's outgoing connections under a policy.

Usage:
  connvisor run [flags] -- CMD [ARGS...]   run CMD with its connects under the policy
  connvisor check FILE                     validate a policy file and print its rules
  connvisor explain FILE DEST              show the decision for DEST ("tcp 10.0.0.1:443", "unix /run/x.sock")
  connvisor version

Run flags (rules from flags come first, in order, then the file's):
  --policy FILE           rules from a policy file
  --allow RULE            allow destinations matching RULE
  --deny RULE[=ERRNO]     deny with ERRNO (default EPERM)
  --log RULE              allow and log at warn level
  --fail RULE=ERRNO[:OPTS] inject a fault (OPTS: when=3..4,probability=0.1,delay=2s; ERRNO may be blackhole)
  --default allow|deny[=ERRNO]
  --seed N                seed for probability= faults (logged when not given)
  --summary               print per-destination counts and latencies at exit
  --log-format console|json, --log-file PATH, -q/--quiet
  --mode emulate|continue continue lets the kernel connect (trusted programs only: the target can
                          swap the address after the check)
  --wait-killable         only fatal signals interrupt a trapped call once received
  --allow-io-uring        let the command use io_uring (its connects are invisible to seccomp)
  --no-send-trap          do not police sendto/sendmsg/sendmmsg destinations

RULE: any | IPv4[/LEN][:PORTS] | [IPv6[/LEN]][:PORTS] | *:PORTS | unix:PATHGLOB | unix:@ABSTRACTGLOB
      PORTS is N, N-M, a list, or *.

With no policy flags the embedded default applies: loopback and UNIX sockets are allowed,
every other destination is denied with EPERM.

Examples:
  connvisor run -- curl http://127.0.0.1:8080/
  connvisor run --deny 127.0.0.1:8080=ECONNREFUSED -- curl http://127.0.0.1:8080/
  connvisor run --policy examples/policies/payments.policy --log-format json -- ./server
  connvisor run --fail '127.0.0.1:5432=ECONNREFUSED:when=1..2' -- ./client
`

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(args[1:])
	case "check":
		return checkCommand(args[1:], os.Stdout, os.Stderr)
	case "explain":
		return explainCommand(args[1:], os.Stdout, os.Stderr)
	case "version", "--version":
		fmt.Println("connvisor", version())
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "connvisor: unknown command %q (expected run, check, explain or version)\n", args[0])
	return exitUsage
}

// Exit codes of connvisor's own failures, apart from the command's.
const (
	exitUsage    = 2
	exitInternal = 125 // connvisor could not run the command
)

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
