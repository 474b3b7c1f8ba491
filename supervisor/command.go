package supervisor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
	"github.com/connvisor/connvisor/policy"
)

// ErrNoUserNotif means the kernel cannot trap connect for a supervisor
// (no seccomp user notification: Linux before 5.0, or seccomp disabled).
var ErrNoUserNotif = errors.New("this kernel has no seccomp user notification (needs Linux 5.0 or later with CONFIG_SECCOMP_FILTER)")

// Cmd is a command that runs with every connect of its process tree under a
// policy. It mirrors exec.Cmd: set the fields, then Start and Wait, or Run.
type Cmd struct {
	Path   string   // the command; looked up in PATH when it has no slash
	Args   []string // Args[0] is the command's name as it sees it
	Env    []string // nil: the supervisor's environment
	Dir    string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// Logger receives one event per decision; nil logs nothing.
	Logger *zap.Logger
	// Options tune the supervisor; the zero value is the safe default.
	Options Options

	// OnDecision, when set, is called for every decision, from the
	// supervisor's goroutines; it must be quick.
	OnDecision func(Event)
	// Record keeps every decision for Decisions(). Off by default: an
	// event costs a look at /proc for the process's pid and executable.
	Record bool

	// mu guards policy and sup, which SetPolicy, Policy and Supervisor
	// may read and write from other goroutines (a control API serving
	// while Start runs).
	mu      sync.Mutex
	sup     *Supervisor
	cmd     *exec.Cmd
	policy  *policy.Policy
	waitErr chan error
	once    sync.Once

	eventsMu sync.Mutex
	events   []Event
}

// maxRecordedEvents bounds the decision log a Cmd keeps in memory.
const maxRecordedEvents = 100000

func (c *Cmd) record(e Event) {
	if c.Record {
		c.eventsMu.Lock()
		if len(c.events) < maxRecordedEvents {
			c.events = append(c.events, e)
		}
		c.eventsMu.Unlock()
	}
	if c.OnDecision != nil {
		c.OnDecision(e)
	}
}

// Decisions returns the decisions made so far, oldest first (at most the
// first 100,000), when Record is set.
func (c *Cmd) Decisions() []Event {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	return append([]Event(nil), c.events...)
}

// FailNext makes the next n connects matching rule (the compact form, e.g.
// "127.0.0.1:5432") fail with errno, in front of the policy in force; the
// rules after it keep their state. It takes effect for the next decision.
//
// It is an error to call it on a Cmd without a policy (see Command and
// SetPolicy), with n < 1, or with an errno that is not a positive Linux
// errno.
func (c *Cmd) FailNext(rule string, n int, errno syscall.Errno) error {
	if n < 1 {
		return fmt.Errorf("FailNext: n is %d, want at least 1", n)
	}
	if errno <= 0 {
		return fmt.Errorf("FailNext: errno %d: want a positive errno such as syscall.ECONNREFUSED", int(errno))
	}
	name := policy.ErrnoName(errno)
	if _, err := policy.ParseErrno(name); err != nil {
		return fmt.Errorf("FailNext: errno %d is not a Linux errno", int(errno))
	}
	cur := c.Policy()
	if cur == nil {
		return errors.New("FailNext: the Cmd has no policy: make it with Command, or call SetPolicy first")
	}
	next, err := cur.Prepend(policy.FlagRule{
		Flag:  "fail",
		Value: fmt.Sprintf("%s=%s:when=1..%d", rule, name, n),
	})
	if err != nil {
		return fmt.Errorf("FailNext: %w", err)
	}
	c.SetPolicy(next)
	return nil
}

// Options tune how the supervisor treats the command.
type Options struct {
	// WaitKillable asks the kernel to let only fatal signals interrupt a
	// trapped call once the supervisor has received it. It removes most
	// repeated notifications (Go's SIGURG preemption), but a blocking
	// connect that the supervisor holds can then not be interrupted by a
	// handled signal, unlike natively.
	WaitKillable bool
	// Continue lets allowed connects run in the kernel (CONTINUE) instead
	// of performing them on a duplicate of the socket. Faster, but the
	// target can rewrite the sockaddr between the check and the connect:
	// only for trusted programs, in tests.
	Continue bool
	// AllowIOUring lets the command create io_uring instances, whose
	// connects and sends seccomp never sees.
	AllowIOUring bool
	// AllowRaw lets the command create raw and packet sockets, which
	// reach the network without connect (ping needs one when it runs as
	// root without ping_group_range).
	AllowRaw bool
	// AllowUserns lets the command create and enter user namespaces. In
	// one, an unprivileged program can mount over the directories that
	// UNIX path rules name and over the binaries exe= rules name.
	AllowUserns bool
	// NoSendTrap stops policing datagrams sent with a destination
	// (sendto, sendmsg, sendmmsg) and TCP fast open.
	NoSendTrap bool
	// Receivers is how many threads receive notifications (0: one). With
	// more, the threads take turns at RECV (the kernel would wake every
	// thread waiting in it for each call: 1.7× the CPU time per call on 2
	// CPUs), and the one receiving hands its turn on whenever another
	// call is already waiting, so calls trapped on several CPUs are
	// handled together. That costs a poll per call, and helps only
	// programs with many threads connecting at once (64 threads doing TCP
	// cycles on 2 CPUs: about +20 %, within the noise there); a
	// single-threaded program such as ab gains nothing. Linux 6.6+ only;
	// older kernels always use one.
	Receivers int
	// KeepPtrace leaves CAP_SYS_PTRACE to a root command, and does not
	// confine the tree in a Landlock domain. It can then attach to the
	// supervisor and answer its own connects, and attach to processes of
	// its user outside the tree: only for trusted programs that need it
	// (debuggers, strace -p).
	KeepPtrace bool
	// LearnNames learns the names the tree resolves from its DNS answers
	// even when the policy names no host, so that every decision's Host
	// says which name an answer gave for the address (connvisor learn
	// writes host rules from them). What is allowed does not change: a
	// policy without host names decides the same with names as without.
	LearnNames bool
}

// Command returns a Cmd that runs name with args under p.
func Command(p *policy.Policy, name string, args ...string) *Cmd {
	return &Cmd{Path: name, Args: append([]string{name}, args...), policy: p}
}

// SetPolicy swaps the policy, atomically: every later decision uses p, every
// decision already made used exactly one policy.
func (c *Cmd) SetPolicy(p *policy.Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.policy = p
	if c.sup != nil {
		c.sup.SetPolicy(p)
	}
}

// Policy returns the policy in force.
func (c *Cmd) Policy() *policy.Policy {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sup != nil {
		return c.sup.Policy()
	}
	return c.policy
}

// Supervisor is the running supervisor, nil before Start.
func (c *Cmd) Supervisor() *Supervisor {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sup
}

// Process is the command's main process, nil before Start.
func (c *Cmd) Process() *os.Process {
	if c.cmd == nil {
		return nil
	}
	return c.cmd.Process
}

// Start launches the command under the filter and starts supervising it.
//
// Start makes the calling process non-dumpable (prctl PR_SET_DUMPABLE 0),
// for the rest of its life: the supervisor is this process, and a
// non-dumpable process cannot be ptraced, read or written through /proc,
// or robbed of its seccomp listener with pidfd_getfd by the wrapped
// programs, which run as the same user. The price: the calling process
// writes no core dump, its /proc/PID files belong to root, and a debugger
// or profiler attaching to it needs CAP_SYS_PTRACE. Run the supervisor in
// a process of its own (connvisor run, or a test binary) when that
// matters.
func (c *Cmd) Start() error {
	if c.cmd != nil {
		return errors.New("connvisor: Start called twice")
	}
	// The policy the filter and the stub are made for; a SetPolicy from
	// another goroutine meanwhile is picked up when the supervisor starts.
	pol := c.Policy()
	if pol == nil {
		return errors.New("connvisor: no policy")
	}
	if len(c.Args) == 0 {
		c.Args = []string{c.Path}
	}
	path, err := lookPath(c.Path, c.Env)
	if err != nil {
		code := exitNotFound
		if errors.Is(err, os.ErrPermission) {
			code = exitNotRunnable
		}
		return &StartError{Path: c.Path, Msg: err.Error(), ExitCode: code}
	}
	if err := checkNotifSizes(); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			return ErrNoUserNotif
		}
		return err
	}
	prog, err := buildFilter(FilterOptions{
		TrapSends:    !c.Options.NoSendTrap,
		AllowIOUring: c.Options.AllowIOUring,
		AllowRaw:     c.Options.AllowRaw,
		// Under an allow-all policy nothing needs the namespaces closed,
		// and clone3 keeps working as natively.
		AllowUserns: c.Options.AllowUserns || pol.AllowsEverything(),
	})
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the child stub: %w", err)
	}
	p := newPipes()
	defer p.closeAll()
	if err := p.open(); err != nil {
		return err
	}
	mode := stubPlain
	if c.Options.WaitKillable {
		mode = stubKillable
	}
	switch {
	case c.Options.KeepPtrace:
		mode += stubKeepPtrace
	case pol.AllowsEverything():
		// Nothing is denied, so nothing needs confining, and the tree
		// keeps mount (which a Landlock domain refuses): an allow-all
		// policy stays invisible. A policy reloaded later does not
		// confine a tree started this way.
		mode += stubNoDomain
	case landlockABI() < minLandlockABI && c.Logger != nil:
		c.Logger.Warn("no Landlock (needs Linux 5.19 with Landlock enabled): the command can ptrace processes of its user outside its tree and make them connect",
			zap.Int("landlock_abi", landlockABI()))
	}
	// A non-dumpable supervisor cannot be ptraced, read or written through
	// /proc, or robbed of its listener with pidfd_getfd by a process
	// without CAP_SYS_PTRACE, which the stub takes from the command.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make the supervisor non-dumpable: %w", err)
	}
	cmd := exec.Command(self, append([]string{"--", path}, c.Args...)...)
	cmd.Args[0] = c.Args[0]
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(append([]string{}, env...), stubEnv+"="+mode)
	cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Dir, c.Stdin, c.Stdout, c.Stderr
	cmd.ExtraFiles = []*os.File{p.filterR, p.statusW, p.ackR}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start child stub: %w", err)
	}
	c.cmd = cmd
	c.waitErr = make(chan error, 1)
	p.closeChildEnds()
	listener, err := p.handshake(cmd.Process.Pid, prog)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	defer listener.Close() // unless the supervisor takes it
	deputy, err := emulate.NewDeputy()
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("prepare to act for the command: %w", err)
	}
	sup := newSupervisor(listener.Move(), pol, c.Logger, c.Options, deputy)
	if c.Record || c.OnDecision != nil {
		sup.onDecision = c.record
	}
	c.mu.Lock()
	if c.policy != pol {
		sup.SetPolicy(c.policy) // changed since pol was read
	}
	c.sup = sup
	c.mu.Unlock()
	sup.start()
	// The command has started once exec closed the status pipe; anything
	// written before that is the stub's error.
	msg, _ := io.ReadAll(p.statusR)
	go func() { c.waitErr <- cmd.Wait() }()
	if len(msg) > 0 {
		err := <-c.waitErr
		c.sup.Stop()
		return &StartError{Path: c.Path, Msg: string(bytes.TrimSpace(msg)), ExitCode: ExitCode(err)}
	}
	return nil
}

// StartError is a command that could not be started. ExitCode is what a
// shell would exit with: 127 for a command not found, 126 for one that
// exists but cannot run (not executable, not a valid binary).
type StartError struct {
	Path     string
	Msg      string
	ExitCode int
}

func (e *StartError) Error() string { return fmt.Sprintf("start %s: %s", e.Path, e.Msg) }

// Wait waits for the command to exit and for every process of its tree to
// be gone (the listener hangs up), then stops the supervisor. The error is
// the command's, as from exec.Cmd.Wait.
func (c *Cmd) Wait() error {
	if c.cmd == nil {
		return errors.New("connvisor: not started")
	}
	err := <-c.waitErr
	c.waitErr <- err // a second Wait gets the same answer
	c.once.Do(func() {
		c.sup.waitTreeGone()
		c.sup.Stop()
	})
	return err
}

// Run starts the command and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Signal sends sig to the command's main process.
func (c *Cmd) Signal(sig os.Signal) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return errors.New("connvisor: not started")
	}
	return c.cmd.Process.Signal(sig)
}

// ExitCode is the exit status the way a shell reports it: the code, or
// 128+signal when the command was killed by a signal, or a StartError's
// (127: not found, 126: cannot run), as `connvisor run` exits.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var se *StartError
	if errors.As(err, &se) {
		return se.ExitCode
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// lookPath finds name in the PATH of the command's environment (env, or
// the supervisor's when env is nil), so the error for a missing command
// comes from the supervisor, before any child exists.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", fmt.Errorf("command %q: %w", name, err)
		}
		return name, nil
	}
	pathList := os.Getenv("PATH")
	if env != nil {
		pathList = ""
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				pathList = v
			}
		}
	}
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: %w", name, exec.ErrNotFound)
}

func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w", path, os.ErrPermission)
	}
	return nil
}

// pipes between the supervisor and the child stub.
type pipes struct {
	filterR, filterW *os.File
	statusR, statusW *os.File
	ackR, ackW       *os.File
}

func newPipes() *pipes { return &pipes{} }

func (p *pipes) open() error {
	var err error
	if p.filterR, p.filterW, err = os.Pipe(); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	if p.statusR, p.statusW, err = os.Pipe(); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	if p.ackR, p.ackW, err = os.Pipe(); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	return nil
}

func (p *pipes) closeChildEnds() {
	for _, f := range []**os.File{&p.filterR, &p.statusW, &p.ackR} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

func (p *pipes) closeAll() {
	p.closeChildEnds()
	for _, f := range []**os.File{&p.filterW, &p.statusR, &p.ackW} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

// handshake sends the filter, takes the listener out of the child with
// pidfd_getfd (no trapped call in the child is needed for that) and lets
// the child go on to exec.
func (p *pipes) handshake(pid int, prog []unix.SockFilter) (*fd.FD, error) {
	if _, err := p.filterW.Write(encodeBPF(prog)); err != nil {
		return nil, fmt.Errorf("send filter to child: %w", err)
	}
	p.filterW.Close()
	p.filterW = nil
	var num [4]byte
	n, err := io.ReadFull(p.statusR, num[:])
	if err != nil {
		rest, _ := io.ReadAll(p.statusR)
		msg := string(append(num[:n], rest...))
		if msg == "" {
			msg = err.Error()
		}
		if bytes.Contains([]byte(msg), []byte("user notification")) {
			return nil, fmt.Errorf("%w: %s", ErrNoUserNotif, msg)
		}
		return nil, fmt.Errorf("child stub: %s", msg)
	}
	childFD := int(binary.NativeEndian.Uint32(num[:]))
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open(child %d): %w", pid, err)
	}
	defer unix.Close(pidfd)
	raw, err := unix.PidfdGetfd(pidfd, childFD, 0)
	if err != nil {
		return nil, fmt.Errorf("take listener fd %d from child %d: %w", childFD, pid, err)
	}
	listener := fd.New(raw)
	if _, err := p.ackW.Write([]byte{1}); err != nil {
		listener.Close()
		return nil, fmt.Errorf("release child: %w", err)
	}
	p.ackW.Close()
	p.ackW = nil
	return listener, nil
}
