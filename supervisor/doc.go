// Package supervisor runs a command with every connect(2) (and every
// datagram sent with a destination) of its whole process tree under a
// policy: allowed, denied with an errno, or failed the way a network fails.
//
// # Running a command
//
// Cmd is shaped like exec.Cmd. Command makes one from a policy (see the
// policy package: policy.Load, policy.Default); Start, Wait and Run behave
// as exec.Cmd's, and ExitCode turns Wait's error into a shell's exit
// status. While the command runs, SetPolicy swaps the policy atomically and
// FailNext puts a one-off fault in front of it; OnDecision and Record
// report every decision (an Event: destination, rule, errno, and for an
// injected fault how it reached the program, Event.Delivery).
//
// # Supervising a listener made elsewhere
//
// A container runtime loads the filter itself, from an OCI seccomp profile
// written from FilterRules (`connvisor profile`), and hands the listener to
// an agent. Supervise runs the same engine on such a listener: the
// processes are not children, so there is no stub and no exec. Done says
// when they are all gone, Stop closes the listener (their trapped calls
// then fail with ENOSYS), and Detach hands a duplicate to another process
// (an agent's upgrade). SuperviseConfig.Stats lets several listeners of
// one container count into one summary.
//
// # The binary is its own child stub
//
// Start re-executes the calling binary (os.Executable) as a small stub
// that loads the seccomp filter and then execs the command. The stub runs
// from this package's init, so importing supervisor is all a program needs;
// nothing must be called from main. A binary that cannot be re-executed
// (deleted, or on a noexec mount) cannot supervise.
//
// # Tests that wrap themselves
//
// A test can run a real program under a policy without building one: the
// test binary plays that program. Give the roles it can play to Main in
// TestMain, and start one with SelfCommand:
//
//	var roles = supervisor.Roles{
//		"client": func(args []string) int { ... dial args[0], print what happened ...; return 0 },
//	}
//
//	func TestMain(m *testing.M) { os.Exit(supervisor.Main(m, roles)) }
//
//	func TestRetries(t *testing.T) {
//		cmd := supervisor.SelfCommand(p, "client", addr)
//		...
//	}
//
// The binary is then started three times: by go test (Main runs the
// tests), as the stub (this package's init), and as the role (Main runs it
// instead of the tests).
//
// # Side effect on the calling process
//
// Start makes the calling process non-dumpable (PR_SET_DUMPABLE 0) for the
// rest of its life, so that the wrapped programs, which run as the same
// user, cannot ptrace the supervisor, read its memory or take its seccomp
// listener. The process then writes no core dump, and attaching a debugger
// or profiler to it needs CAP_SYS_PTRACE.
//
// # How a trapped call is answered
//
// The life of a supervised tree, in the order the code runs it:
//
//  1. stub.go: the re-executed stub locks its thread, sets no_new_privs,
//     enters a Landlock domain, loads the filter (filter.go: connect and the
//     sends return USER_NOTIF; side doors are refused in the filter or
//     trapped to be refused with a log line) and execs the command. The
//     parent takes the listener with pidfd_getfd (command.go).
//  2. supervisor.go: a loop on a locked OS thread blocks in RECV (Linux
//     6.6+; older kernels poll the listener first), receives a notification
//     (notif.go) and calls handle. With Options.Receivers > 1 several loops
//     take turns at RECV; one thread's calls are handled one at a time
//     (tidLocks). A panic while handling fails that call closed and the
//     loop goes on (recover.go).
//  3. handle.go, send.go: handle must not block. It duplicates the target's
//     socket, copies the arguments out of its memory (emulate), checks that
//     the notification is still pending (only then does what was read
//     belong to the call), decides with the policy, and performs the call
//     on the duplicate with the copy.
//  4. The tree is gone when the listener hangs up; stop closes what is left.
//
// Deciding is one step and counting another: policy.Decide is pure, and
// the call is counted by the fault schedules it meets (policy.Count, in
// decide, names.go) once, where it is performed. The inline attempt at a
// UNIX pathname connect only looks; a decision a schedule must settle
// sends the call to the held path, which decides and counts.
//
// A call ends in one of three ways. Most are answered inline, with an errno
// or a value. A call that may block (a blocking UNIX connect, a delay, a
// send waiting for room) is held: it goes on in a goroutine (hold, bounded
// by maxHeldCalls), which answers it, and a restart of the call joins it
// (repeat.go for connects, heldsend.go for sends). A blocking TCP connect is
// started without blocking and finished by the waiter (waiter.go), which
// answers it when epoll says the handshake is over.
//
// Return conventions on that path: an errno of 0 with ok true means go on;
// a non-zero errno is what the target gets (the kernel's own errno where the
// kernel would have failed, the policy's where it denies); ok false means
// the target is gone or no longer waits, and nobody must be answered.
// Errors (Go error values) are the supervisor's own failures: they are
// logged and the call fails closed (EPERM).
//
// Ownership: every descriptor is an fd.FD with one owner (internal/fd).
// The call owns the duplicate of the target's socket (call.dup); the
// handler defers call.release, and whoever finishes the call off the loop
// takes it over with call.takeOver (heldOrClosed, the held sends, the
// waiter), so the handler's release then does nothing. reply answers a call
// after closing its duplicate, because the program's close must be the
// last. The pidfds a loop caches (receiver.pidfd) are that loop's alone
// and only borrowed by its calls: a held goroutine that needs one opens
// its own. The Supervisor owns the listener; stop closes it.
//
// Limits and timings (how many calls may be held, how often a held call
// checks that its target still waits) are in limits.go, each with why.
//
// # Privileges
//
// Nothing here needs root. Faults on nonblocking TCP sockets are made by
// the kernel itself against loopback "tarpits" (see package emulate/tarpit);
// with CAP_NET_RAW and CAP_NET_ADMIN every errno arrives asynchronously,
// as from a network, at the exact delay. Without them a refusal after a
// delay and a sub-second timeout land on the kernel's next SYN
// retransmission (1 s, 2 s, 3 s... after the connect), and ENETUNREACH-like
// errnos are returned by connect itself; the supervisor logs a warning at
// start naming each rule affected and when its fault will arrive.
package supervisor
