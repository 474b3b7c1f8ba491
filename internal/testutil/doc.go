// Package testutil is the harness every test package shares, so that a
// test says what it checks and not how to run a program:
//
//   - Main builds connvisor and the package's helper programs once per
//     test binary, into one directory removed after the tests (Bins);
//     Bins.GCC builds C programs beside them.
//   - Run and Cmd.Run run a program natively, Bins.Wrapped under
//     `connvisor run FLAGS --`, each into one Result (output, exit status
//     as a shell reports it, time taken), bounded by a named timeout.
//   - Listen serves loopback connections and counts them; FreePort finds
//     a port nothing listens on.
//   - RerunUnprivileged runs a test binary again as user nobody.
//   - SeccompData and RunSeccomp run a seccomp filter program in
//     golang.org/x/net/bpf's VM.
package testutil

import "time"

// Timeouts bound what the tests wait for, so that a hang fails one test
// instead of stalling the suite until its deadline. None is a timed
// assertion: each is many times what a passing run takes.
const (
	// RunTimeout bounds one run of a program under test (Run, Wrapped).
	RunTimeout = 60 * time.Second
	// LongRunTimeout bounds a run of a whole workload (a git clone under
	// learn, an attack program's flood).
	LongRunTimeout = 90 * time.Second
	// WaitDelay is how long a run's pipes may stay open after it ends or
	// is killed: a supervisor killed by an attack leaves the target
	// holding them.
	WaitDelay = 5 * time.Second
	// AcceptWait bounds the wait for a Listener's connections (the client
	// may close before the server's accept runs).
	AcceptWait = 2 * time.Second
)
