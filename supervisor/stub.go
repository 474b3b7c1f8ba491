package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The child stub is this very binary, re-executed with stubEnv set. It loads
// the filter on its own thread, hands the listener to the supervisor and
// execs the command. File descriptors it inherits:
const (
	stubFilterFD = 3 // read: the BPF program, then EOF
	stubStatusFD = 4 // write: the listener's fd number, then (close-on-exec) an exec error
	stubAckFD    = 5 // read: one byte once the supervisor holds the listener
)

const (
	stubEnv = "CONNVISOR_STUB"
	// stubKillable asks for SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV.
	stubKillable = "killable"
	stubPlain    = "plain"
	// stubKeepPtrace, appended to the mode, keeps CAP_SYS_PTRACE and
	// makes no Landlock domain.
	stubKeepPtrace = "+ptrace"
	// stubNoDomain, appended to the mode, makes no Landlock domain.
	stubNoDomain = "+nodomain"
	// What the stub exits with when it cannot start the command, as a
	// shell does: 127 not found, 126 found but not runnable.
	exitNotFound    = 127
	exitNotRunnable = 126
)

// execExitCode maps an exec failure to the shell's exit status.
func execExitCode(err error) int {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return exitNotFound
	}
	return exitNotRunnable
}

// init runs the child stub when this process is one. It lives in init so
// that every binary importing supervisor (connvisor itself, tests, user
// programs using the Go API) can serve as its own stub without remembering
// to call anything: a forgotten call would re-run the parent's main.
func init() {
	mode, ok := os.LookupEnv(stubEnv)
	if !ok {
		return
	}
	runtime.LockOSThread()
	keepPtrace := strings.Contains(mode, stubKeepPtrace)
	confine := !keepPtrace && !strings.Contains(mode, stubNoDomain)
	if err := runStub(strings.HasPrefix(mode, stubKillable), keepPtrace, confine); err != nil {
		fmt.Fprintf(os.NewFile(stubStatusFD, "status"), "%v", err)
		os.Exit(execExitCode(err))
	}
}

// runStub returns only on failure.
func runStub(killable, keepPtrace, confine bool) error {
	if len(os.Args) < 3 || os.Args[1] != "--" {
		return fmt.Errorf("connvisor stub: bad arguments %q", os.Args)
	}
	path, argv := os.Args[2], os.Args[3:]
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, stubEnv+"=") {
			env = append(env, kv)
		}
	}
	raw, err := io.ReadAll(os.NewFile(stubFilterFD, "filter"))
	if err != nil {
		return fmt.Errorf("read filter: %w", err)
	}
	prog, err := decodeBPF(raw)
	if err != nil {
		return err
	}
	unix.Close(stubFilterFD)
	// The status pipe must vanish on exec, so the supervisor reads EOF
	// when the command has started.
	if _, err := unix.FcntlInt(stubStatusFD, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("status pipe: %w", err)
	}
	// no_new_privs lets an unprivileged user load a filter, and keeps a
	// setuid binary in the tree from gaining privileges over the supervisor.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if !keepPtrace {
		if err := dropPtrace(); err != nil {
			return err
		}
	}
	if confine {
		if err := confineToTree(); err != nil {
			return err
		}
	}
	listener, err := loadFilter(prog, killable)
	if err != nil {
		return err
	}
	// From here on the child makes as few system calls as it can: none of
	// them trapped, so none of them waits for a supervisor not yet listening.
	var num [4]byte
	binary.NativeEndian.PutUint32(num[:], uint32(listener))
	if _, err := unix.Write(stubStatusFD, num[:]); err != nil {
		return fmt.Errorf("hand over listener: %w", err)
	}
	var ack [1]byte
	if n, err := unix.Read(stubAckFD, ack[:]); n != 1 {
		return fmt.Errorf("supervisor did not take the listener: %v", err)
	}
	unix.Close(stubAckFD)
	unix.Close(listener)
	err = syscall.Exec(path, argv, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

// loadFilter installs prog on the calling thread with a new listener.
// WAIT_KILLABLE_RECV (Linux 5.19) is requested when asked and dropped on
// kernels that refuse it.
func loadFilter(prog []unix.SockFilter, killable bool) (int, error) {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER)
	if killable {
		flags |= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	}
	for {
		fd, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
		if e == 0 {
			runtime.KeepAlive(prog)
			return int(fd), nil
		}
		if e == unix.EINVAL && flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
			flags &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
			continue
		}
		return -1, fmt.Errorf("load seccomp filter with a listener (needs Linux 5.0 with user notification): %w", e)
	}
}

// dropPtrace removes CAP_SYS_PTRACE from the bounding set, so that a root
// command cannot reach into the (non-dumpable) supervisor with ptrace,
// process_vm_writev, /proc/PID/mem or pidfd_getfd and answer its own
// notifications. Without CAP_SETPCAP (an unprivileged user) there is
// nothing to drop: no_new_privs already keeps file capabilities away.
func dropPtrace() error {
	err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_SYS_PTRACE, 0, 0, 0)
	if err != nil && err != unix.EPERM {
		return fmt.Errorf("drop CAP_SYS_PTRACE from the bounding set: %w", err)
	}
	// The ambient set would carry it over exec for a non-root command.
	unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	return nil
}

// confineToTree puts the command in a Landlock domain of its own, which
// every descendant inherits. Any Landlock domain scopes ptrace (Linux
// 5.13): a process in it can no longer ptrace, pidfd_getfd from,
// process_vm_writev to or open /proc/PID/mem of a process outside it,
// such as the shell of the same user that started connvisor, and make
// that process connect where the policy would deny. The supervisor,
// outside the domain, still reaches into the tree.
//
// A domain must restrict something. It handles LANDLOCK_ACCESS_FS_REFER
// (Linux 5.19, ABI 2) and grants it beneath "/", so no file access
// changes; as with any filesystem domain, the tree can no longer mount,
// unmount or pivot_root (hook_sb_mount), which also keeps a root command
// from mounting over the paths that UNIX rules name. Signals and abstract
// UNIX sockets (ABI 6 scopes) are left alone: killing a process outside
// the tree works natively and reaches no destination, and the policy
// decides every abstract connect. Kernels without Landlock, or with ABI 1
// only (where REFER cannot be granted), are left as they are: the
// supervisor logs it (landlockABI).
func confineToTree() error {
	ruleset := landlockRulesetAttr{handledAccessFS: unix.LANDLOCK_ACCESS_FS_REFER}
	fd, _, e := unix.RawSyscall(unix.SYS_LANDLOCK_CREATE_RULESET,
		uintptr(unsafe.Pointer(&ruleset)), unsafe.Sizeof(ruleset), 0)
	switch e {
	case 0:
	case unix.ENOSYS, unix.EOPNOTSUPP, unix.EINVAL:
		// No Landlock, Landlock off at boot, or ABI 1 (no REFER).
		return nil
	default:
		return fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	defer unix.Close(int(fd))
	root, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open / for the Landlock rule: %w", err)
	}
	defer unix.Close(root)
	rule := unix.LandlockPathBeneathAttr{Allowed_access: unix.LANDLOCK_ACCESS_FS_REFER, Parent_fd: int32(root)}
	if _, _, e := unix.RawSyscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&rule)), 0, 0, 0); e != 0 {
		return fmt.Errorf("landlock_add_rule(/): %w", e)
	}
	// no_new_privs is set, so an unprivileged user may do this too.
	if _, _, e := unix.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", e)
	}
	return nil
}

// landlockRulesetAttr is the prefix of struct landlock_ruleset_attr that
// ABI 1 already knows; the kernel accepts any size from there on.
type landlockRulesetAttr struct {
	handledAccessFS uint64
}

// landlockABI is the Landlock ABI version of this kernel, 0 without it.
func landlockABI() int {
	v, _, e := unix.RawSyscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(v)
}

// minLandlockABI is the first ABI with LANDLOCK_ACCESS_FS_REFER, which
// confineToTree needs.
const minLandlockABI = 2
