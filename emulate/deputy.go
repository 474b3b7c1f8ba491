package emulate

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The deputy makes a target's UNIX connects and sends with the target's
// credentials and filesystem view (root, working directory, mount
// namespace), so that the kernel's permission checks and SO_PEERCRED see
// the target. Its identity is read in identity.go; what it does with a
// pathname is in unixresolve.go.

// Deputy acts for targets on their UNIX sockets with their identity and
// filesystem view. It caches the supervisor's own view (root, working
// directory, mount namespace, credentials), which does not change, so a
// connect costs only the look at the target's.
type Deputy struct {
	self           identity
	root, cwd, mnt FileID
	procFD         int // /proc/self/fd, to reach an O_PATH descriptor by name
}

func statID(path string) (FileID, bool) {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return FileID{}, false
	}
	return FileID{st.Dev, st.Ino}, true
}

// NewDeputy records the supervisor's own view; Close releases it.
func NewDeputy() (*Deputy, error) {
	d := &Deputy{procFD: -1}
	var err error
	if d.self, err = selfIdentity(); err != nil {
		return nil, err
	}
	var ok1, ok2, ok3 bool
	d.root, ok1 = statID("/")
	d.cwd, ok2 = statID(".")
	d.mnt, ok3 = statID("/proc/self/ns/mnt")
	if !ok1 || !ok2 || !ok3 {
		return nil, errors.New("stat the supervisor's root, cwd or mount namespace")
	}
	if d.procFD, err = unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("open /proc/self/fd: %w", err)
	}
	return d, nil
}

// Close releases the deputy's descriptor.
func (dp *Deputy) Close() {
	if dp.procFD >= 0 {
		unix.Close(dp.procFD)
		dp.procFD = -1
	}
}

// RunAsTarget runs op (a connect or send on a duplicate of tid's socket)
// with tid's credentials and, when fs is set, tid's root, working
// directory and mount namespace. When those are the supervisor's own, op
// runs right here; otherwise on a locked OS thread that is thrown away
// afterwards, because chroot, setns and per-thread credentials taint it.
func (dp *Deputy) RunAsTarget(tid int, fs bool, op func() syscall.Errno) (syscall.Errno, error) {
	ctx, err := dp.openContext(tid, fs)
	if err != nil {
		return 0, err
	}
	defer ctx.close()
	return ctx.run(op)
}

// run calls op here when the supervisor already acts as the target would,
// else on a locked OS thread that becomes the target and is thrown away:
// never unlocked, it exits with its goroutine, taking its changed root,
// cwd, namespace and credentials with it.
func (c *targetContext) run(op func() syscall.Errno) (syscall.Errno, error) {
	if c.matchesSelf() {
		return op(), nil
	}
	type result struct {
		errno syscall.Errno
		err   error
	}
	done := make(chan result, 1)
	go func() {
		lockThread()
		defer func() {
			// A panic here would end the supervisor: report it as this
			// call's failure instead.
			if r := recover(); r != nil {
				done <- result{0, fmt.Errorf("panic acting as the target: %v\n%s", r, debug.Stack())}
			}
		}()
		if err := c.become(); err != nil {
			done <- result{0, err}
			return
		}
		done <- result{op(), nil}
	}()
	r := <-done
	return r.errno, r.err
}

// targetContext holds handles on tid's filesystem view and its identity.
type targetContext struct {
	root, cwd, mntns int
	sameRoot, sameNS bool
	sameCwd          bool
	id, self         identity
}

func (dp *Deputy) openContext(tid int, fs bool) (*targetContext, error) {
	c := &targetContext{root: -1, cwd: -1, mntns: -1, sameRoot: true, sameCwd: true, sameNS: true, self: dp.self}
	proc := "/proc/" + strconv.Itoa(tid)
	var err error
	if c.id, err = targetIdentity(tid); err != nil {
		return nil, err
	}
	if !fs {
		return c, nil
	}
	// Compare first (stat follows the magic links to what they name);
	// open handles only when the thread must become the target.
	c.sameRoot = sameAs(proc+"/root", dp.root)
	c.sameCwd = sameAs(proc+"/cwd", dp.cwd)
	c.sameNS = sameAs(proc+"/ns/mnt", dp.mnt)
	if c.matchesSelf() {
		return c, nil
	}
	if c.root, err = unix.Open(proc+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		c.close()
		return nil, fmt.Errorf("open root of tid %d: %w", tid, goneOr(err))
	}
	if c.cwd, err = unix.Open(proc+"/cwd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		c.close()
		return nil, fmt.Errorf("open cwd of tid %d: %w", tid, goneOr(err))
	}
	if c.mntns, err = unix.Open(proc+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		c.close()
		return nil, fmt.Errorf("open mount namespace of tid %d: %w", tid, goneOr(err))
	}
	return c, nil
}

func sameAs(path string, id FileID) bool {
	got, ok := statID(path)
	return ok && got == id
}

func (c *targetContext) close() {
	for _, fd := range []int{c.root, c.cwd, c.mntns} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// matchesSelf: the supervisor would resolve and connect exactly as the
// target, so no separate thread is needed.
func (c *targetContext) matchesSelf() bool {
	return c.sameRoot && c.sameCwd && c.sameNS && c.id.equal(&c.self)
}

// fsCaps are the capabilities that bear on resolving a path and on the
// write-permission check of a UNIX connect: CAP_CHOWN, CAP_DAC_OVERRIDE,
// CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_MAC_OVERRIDE,
// CAP_MAC_ADMIN. Others (CAP_SYS_PTRACE, which the command loses) do not
// make the supervisor's view different from the target's.
const fsCaps = 1<<unix.CAP_CHOWN | 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH |
	1<<unix.CAP_FOWNER | 1<<unix.CAP_FSETID | 1<<unix.CAP_MAC_OVERRIDE | 1<<unix.CAP_MAC_ADMIN

func (a *identity) equal(b *identity) bool {
	if a.ruid != b.ruid || a.euid != b.euid || a.suid != b.suid || a.fsuid != b.fsuid ||
		a.rgid != b.rgid || a.egid != b.egid || a.sgid != b.sgid || a.fsgid != b.fsgid ||
		a.capEff&fsCaps != b.capEff&fsCaps || len(a.groups) != len(b.groups) {
		return false
	}
	for i := range a.groups {
		if a.groups[i] != b.groups[i] {
			return false
		}
	}
	return true
}

// become gives the calling (locked, disposable) OS thread the target's
// filesystem view and credentials.
func (c *targetContext) become() error {
	// A private fs context, so chdir, chroot and setns touch only this thread.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare(CLONE_FS): %w", err)
	}
	if !c.sameNS {
		if err := unix.Setns(c.mntns, unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("enter the target's mount namespace: %w", err)
		}
	}
	if !c.sameRoot || !c.sameNS {
		if err := unix.Fchdir(c.root); err != nil {
			return fmt.Errorf("fchdir to the target's root: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot to the target's root: %w", err)
		}
	}
	if c.cwd >= 0 {
		if err := unix.Fchdir(c.cwd); err != nil {
			return fmt.Errorf("fchdir to the target's cwd: %w", err)
		}
	}
	return c.id.assume()
}

// assume gives the calling thread the target's credentials. Raw system
// calls, because glibc and Go's syscall package change every thread of the
// process; the kernel keeps credentials per thread.
func (id *identity) assume() error {
	groups := append(id.groups, 0) // never empty, so &groups[0] is valid
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(id.groups)), uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(id.rgid), uintptr(id.egid), uintptr(id.sgid)); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETFSGID, uintptr(id.fsgid), 0, 0); e != 0 {
		return fmt.Errorf("setfsgid: %w", e)
	}
	// Keep the permitted set across the change of uid (it would be cleared
	// on leaving uid 0), so the effective set can be made the target's
	// below, plus CAP_SYS_ADMIN.
	if _, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(id.ruid), uintptr(id.euid), uintptr(id.suid)); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
	}
	// setfsuid reports the previous value, never an error.
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(id.fsuid), 0, 0)
	// Effective capabilities as the target's, so a root target that dropped
	// CAP_DAC_OVERRIDE is not granted it back by the supervisor.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	// CAP_SYS_ADMIN stays: the kernel checks it against the sender of
	// SCM_CREDENTIALS, which the supervisor has checked against the
	// target already, so that the target's own pid can go as is.
	eff := id.capEff | 1<<capSysAdmin
	data[0].Effective = uint32(eff) & data[0].Permitted
	data[1].Effective = uint32(eff>>32) & data[1].Permitted
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// lockThread wires the calling goroutine to its OS thread for good: a
// thread whose root, cwd or credentials changed must die with it.
func lockThread() { runtime.LockOSThread() }
