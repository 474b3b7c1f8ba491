package supervisor

import (
	"errors"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
	"github.com/connvisor/connvisor/policy"
)

// x32SyscallBit marks an x32 system call number (__X32_SYSCALL_BIT).
const x32SyscallBit = 0x40000000

// handle answers one notification. It runs on the loop's thread and must
// not block: anything slow is held in a goroutine.
func (s *Supervisor) handle(r *receiver, n *Notification) {
	// x32 shares x86_64's arch token and sets bit 30 of the number.
	if n.Arch != s.arch || n.Nr&x32SyscallBit != 0 {
		s.refuse(n, "compat ABI", syscall.EPERM)
		return
	}
	if s.policy.Load().AllowsEverything() && int(n.Nr) != unix.SYS_IO_URING_SETUP {
		// Nothing is denied: the kernel runs the call itself, raw
		// sockets, source routes and user namespaces included.
		s.continueAllowed(n)
		return
	}
	switch int(n.Nr) {
	case unix.SYS_CONNECT:
		s.handleConnect(r, n)
	case unix.SYS_IO_URING_SETUP:
		s.refuse(n, "io_uring", syscall.EPERM)
	case unix.SYS_SENDTO, unix.SYS_SENDMSG, unix.SYS_SENDMMSG:
		s.handleSend(r, n)
	case unix.SYS_SOCKET:
		// Only raw and packet sockets reach here: they reach the network
		// without connect and name no port a rule could match.
		s.refuse(n, "raw or packet socket (--allow-raw to permit)", syscall.EPERM)
	case unix.SYS_SETSOCKOPT:
		// Only the options of trappedSockopts reach here, decided on the
		// registers: SCTP connectx (its address list is not policed;
		// connect(2) on SCTP still works) and source routes.
		why := sockoptWhy(n.Args[setsockoptLevelArg], n.Args[setsockoptOptionArg])
		if why == "" {
			s.refuse(n, "unexpected setsockopt", syscall.ENOSYS)
			return
		}
		s.refuse(n, why, syscall.EPERM)
	case unix.SYS_UNSHARE, unix.SYS_CLONE, unix.SYS_SETNS:
		// Only calls that create or enter a user namespace reach here.
		s.refuse(n, "user namespace (--allow-userns to permit)", syscall.EPERM)
	default:
		// Trapped by a filter rule we do not know how to answer: fail closed.
		s.refuse(n, "unexpected system call", syscall.ENOSYS)
	}
}

// continueAllowed lets the kernel run a call that the policy allows
// whatever it names: no decision depends on the call's memory, so there is
// nothing for the target to swap, and the kernel's own call is the most
// faithful one (SO_PEERCRED's pid included). The destination read for the
// log is best effort.
func (s *Supervisor) continueAllowed(n *Notification) {
	c := &call{n: *n, start: time.Now()}
	d := policy.Decision{Action: policy.Allow}
	logIt := s.wantsIdentity(d)
	if logIt && int(n.Nr) == unix.SYS_CONNECT {
		if sa, errno, err := emulate.ReadSockaddr(int(n.Tid), n.Args[1], n.Args[2]); err == nil && errno == 0 {
			sa.Decode(&c.dest)
			c.proc, _ = emulate.Identify(int(n.Tid))
		}
	}
	s.answer(n.ID, Continue())
	if logIt && int(n.Nr) == unix.SYS_CONNECT {
		s.logDecision(c, d, 0)
	}
}

// refuse denies a side door that the policy cannot decide, with a log line.
func (s *Supervisor) refuse(n *Notification, what string, e syscall.Errno) {
	s.answer(n.ID, Errno(e))
	s.log.Warn("refused",
		zap.String("decision", "deny"),
		zap.String("reason", what),
		zap.Uint32("tid", n.Tid),
		zap.Int32("syscall_nr", n.Nr),
		zap.String("arch", archName(n.Arch)),
		zap.String("errno", policy.ErrnoName(e)))
	s.stats.record(label("("+what+")"), policy.Deny, 0)
}

// call is what the supervisor learned about one trapped connect.
type call struct {
	n   Notification
	rcv *receiver // the receiving thread's, for a call handled on it

	start time.Time
	dup   *fd.FD           // the duplicate of the target's socket; see takeOver
	sa    emulate.Sockaddr // what is connected: asked, unspecified address resolved
	asked emulate.Sockaddr // the address as the target passed it (a restart passes it again)
	info  emulate.SocketInfo
	dest  policy.Dest
	proc  emulate.Process
	// delivery: how an injected fault reaches the program (0: directly,
	// as the call's own result).
	delivery Delivery
}

// Delivery says how an injected fault reaches the program.
type Delivery uint8

const (
	// DeliveredSync: the call itself returns the errno (after the delay).
	DeliveredSync Delivery = iota
	// DeliveredAsync: a nonblocking connect returns EINPROGRESS, and the
	// errno arrives later through poll and SO_ERROR, as from a network.
	DeliveredAsync
	// DeliveredInProgress: a blackhole; the nonblocking connect returns
	// EINPROGRESS and stays in progress until the program gives up.
	DeliveredInProgress
)

func (d Delivery) String() string {
	switch d {
	case DeliveredAsync:
		return "so_error"
	case DeliveredInProgress:
		return "in_progress"
	}
	return "sync"
}

// takeOver hands the call to whoever finishes it off the loop (a held
// goroutine, the waiter): the copy it returns owns the duplicate, and c
// keeps none, so the loop's deferred Close does nothing. The copy has no
// receiver: a loop's cached pidfds are that loop's alone.
func (c *call) takeOver() *call {
	held := *c
	held.dup = c.dup.Move()
	held.rcv = nil
	return &held
}

// release closes the call's duplicate if the call still owns one (it has
// none before prepare, and none after takeOver). The handlers defer it.
func (c *call) release() { c.dup.Close() }

// reply answers the call after releasing its duplicate: a program that
// closes its socket right after the call must make the last close (which
// sends the FIN, and what TCP_CORK or MSG_MORE held back). It reports
// whether the answer reached the program.
func (s *Supervisor) reply(c *call, r Response) bool {
	c.dup.Close()
	return s.answer(c.n.ID, r)
}

// handleConnect follows the kernel's order of checks (EBADF, then the
// address copy's EINVAL/EFAULT, then ENOTSOCK), decides on a private copy
// of the address, and connects that copy on a duplicate of the socket.
func (s *Supervisor) handleConnect(r *receiver, n *Notification) {
	c := &call{n: *n, start: time.Now(), rcv: r}
	defer c.release()
	errno, ok := s.prepare(c, n.Args[0], n.Args[1], n.Args[2])
	if !ok {
		return
	}
	if errno != 0 {
		s.reply(c, Errno(errno))
		return
	}
	switch r, outcome := s.repeats.take(c); outcome {
	case repeatHit:
		// A restarted call (signal with SA_RESTART) of a connect we
		// already made: the program must see the first call's result,
		// not the EALREADY/EISCONN our second attempt would get.
		s.reply(c, Errno(r))
		return
	case repeatJoined:
		return // the connect under way answers this one too
	case repeatInterrupted:
		s.reply(c, Errno(r))
		return
	}
	if c.sa.Malformed() || !c.sa.Reaches(c.info.Domain) || emulate.TCPv6RefusesIPv4(c.dup.Int(), c.info, &c.sa) {
		// No destination in it: the kernel's own errno is the answer.
		s.finish(c, policy.Decision{Action: policy.Allow}, emulate.Connect(c.dup.Int(), &c.sa), true)
		return
	}
	c.sa.Decode(&c.dest)
	c.dest.SockType = c.info.Type
	// Connect where was decided: an unspecified address is written out
	// as the one decided, so a bind by another thread cannot move it.
	c.sa = emulate.ResolveName(&c.dest, &c.sa, c.dup.Int(), emulate.UseConnect)
	pol := s.policy.Load()
	if c.dest.Family == syscall.AF_UNIX && !c.dest.Abstract && !c.dest.Unnamed && !s.opts.Continue {
		// Decided once resolved as the target: here when the supervisor
		// sees the filesystem as the target does and the connect cannot
		// block, else off the loop on a thread of the target's identity.
		if !s.unixPathInline(c, pol) {
			s.heldOrClosed(c, policy.Decision{Action: policy.Deny, Errno: syscall.EAGAIN}, func(c *call) { s.unixPathConnect(c, pol) })
		}
		return
	}
	if err := s.identify(c, pol); err != nil {
		// Fail closed: a rule may depend on what we could not read.
		s.log.Error("identify connecting process", zap.Uint32("tid", n.Tid), zap.Error(err))
		s.finish(c, policy.Decision{Action: policy.Deny, Errno: syscall.EPERM}, syscall.EPERM, false)
		return
	}
	s.prepareDNS(c.dup.Int(), &c.dest)
	d := s.decide(pol, &c.dest)
	if d.Action == policy.Deny || d.Action == policy.Fail || d.Pending() {
		// Natively the socket's state refuses some connects before the
		// address counts (EALREADY, EISCONN...): then neither the deny's
		// errno nor a fault applies, and no schedule counts the call.
		if e := emulate.RefusedBeforeDestination(c.dup.Int(), c.info, &c.asked); e != 0 {
			if d.Action != policy.Deny || d.Pending() {
				d = policy.Decision{Action: policy.Allow} // the kernel's own answer
			}
			s.finish(c, d, e, false)
			return
		}
	}
	d = s.count(pol, &c.dest, d)
	switch d.Action {
	case policy.Deny:
		s.finish(c, d, d.Errno, false)
	case policy.Fail:
		s.heldOrClosed(c, d, func(c *call) { s.inject(c, d) })
	default:
		s.connect(c, d)
	}
}

// prepare duplicates the target's socket and copies its address. ok is
// false when the target is gone and nobody waits for an answer.
func (s *Supervisor) prepare(c *call, fd, addr, addrlen uint64) (syscall.Errno, bool) {
	tid := c.n.Tid
	if _, errno, ok := s.dupTargetSocket(c, fd); !ok || errno != 0 {
		if ok && errno == syscall.EBADF {
			ok = stillValid(s.listener, c.n.ID)
		}
		return errno, ok
	}
	sa, errno, err := emulate.ReadSockaddr(int(tid), addr, addrlen)
	if errors.Is(err, emulate.ErrTargetGone) {
		return 0, false
	}
	// The tid could have died and been reused between the notification
	// and our reads: only a still-valid notification vouches for them.
	if !stillValid(s.listener, c.n.ID) {
		return 0, false
	}
	if err != nil {
		s.log.Error("read target memory", zap.Uint32("tid", tid), zap.Error(err))
		return syscall.EPERM, true
	}
	if errno != 0 {
		if emulate.IsPathFD(c.dup.Int()) {
			return syscall.EBADF, true // connect's fdget refuses O_PATH before it reads the address
		}
		return errno, true
	}
	c.sa, c.asked = sa, sa
	return s.inspect(c), true
}

// dupTargetSocket duplicates descriptor targetFD of c's thread into c.dup. The
// errno is the target's answer (EBADF first, as the kernel checks it
// first); ok is false when the target is gone and nobody waits.
func (s *Supervisor) dupTargetSocket(c *call, targetFD uint64) (pidfd int, errno syscall.Errno, ok bool) {
	tid := c.n.Tid
	for {
		pidfd, cached, err := c.rcv.pidfd(tid)
		if err != nil {
			if !errors.Is(err, emulate.ErrTargetGone) {
				s.log.Error("open target thread", zap.Uint32("tid", tid), zap.Error(err))
				return -1, syscall.EPERM, true
			}
			return -1, 0, false
		}
		dup, errno, err := emulate.DupTargetFD(pidfd, targetFD)
		if errors.Is(err, emulate.ErrTargetGone) {
			c.rcv.drop(tid)
			if cached {
				// The cached pidfd may be a dead thread's whose tid a
				// new thread now has (tids wrap at pid_max, often
				// 32768): only a pidfd opened now says whether the
				// caller is gone. Dropping the call unanswered would
				// leave the new thread waiting forever.
				continue
			}
			return -1, 0, false
		}
		if err != nil {
			// Fail closed; the log says why (EPERM: target not dumpable).
			s.log.Error("duplicate target socket", zap.Uint32("tid", tid), zap.Error(err))
			return -1, syscall.EPERM, true
		}
		if errno != 0 {
			return -1, errno, true
		}
		c.dup = fd.New(dup)
		return pidfd, 0, true
	}
}

// inspect reads c.dup's type, domain and flags into c.info; the errno is
// ENOTSOCK for a descriptor that is not a socket, EPERM (fail closed) when
// it cannot be read.
func (s *Supervisor) inspect(c *call) syscall.Errno {
	info, errno, err := emulate.Inspect(c.dup.Int())
	if err != nil {
		s.log.Error("inspect target socket", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		return syscall.EPERM
	}
	c.info = info
	return errno
}

// identify fills the process details that the policy or the log needs.
func (s *Supervisor) identify(c *call, pol *policy.Policy) error {
	if !pol.NeedsExe() && !pol.NeedsUID() {
		return nil // the log fills it later, when it writes
	}
	p, err := emulate.Identify(int(c.n.Tid))
	if err != nil {
		return err
	}
	// Only a call still waiting vouches for what was read: another thread's
	// exec can give the tid (a leader's) a new executable once the thread
	// that made the call is gone.
	if !stillValid(s.listener, c.n.ID) {
		return emulate.ErrTargetGone
	}
	c.proc = p
	c.dest.Exe, c.dest.UID = p.Exe, p.UID
	return nil
}

// connect performs an allowed connect for the target.
func (s *Supervisor) connect(c *call, d policy.Decision) {
	if s.opts.Continue {
		// Trusted-program mode: the kernel connects whatever the memory
		// holds by then, which is the documented race.
		s.identifyForLog(c, d)
		s.reply(c, Continue())
		s.logDecision(c, d, 0)
		return
	}
	// An abstract UNIX connect runs with the target's credentials, which
	// may take a thread of its own: off the loop, like one that may block.
	abstract := c.dest.Family == syscall.AF_UNIX && c.dest.Abstract
	mayBlock := c.info.ConnectBlocks()
	if !abstract && !mayBlock && d.Delay == 0 {
		s.finish(c, d, emulate.Connect(c.dup.Int(), &c.sa), true)
		return
	}
	inet := c.dest.Family == syscall.AF_INET || c.dest.Family == syscall.AF_INET6
	if mayBlock && inet && c.info.Type == syscall.SOCK_STREAM && d.Delay == 0 && s.waiter != nil {
		s.startBlockingInet(c, d)
		return
	}
	s.heldOrClosed(c, d, func(c *call) {
		if d.Delay > 0 {
			wait, expired := sndTimeoBound(c, d.Delay)
			if !expired {
				wait = d.Delay
			}
			if !s.sleepWhileValid(c, wait) {
				s.finish(c, d, syscall.EINTR, false)
				return
			}
			if expired {
				// A slow connect outlived SO_SNDTIMEO: the call returns
				// EINPROGRESS and the handshake goes on, as natively.
				errno := emulate.StartConnect(c.dup.Int(), &c.sa, c.info.Flags)
				if errno == 0 || errno == syscall.EINPROGRESS || errno == syscall.EALREADY {
					errno = sndTimeoErrno(c)
				}
				s.finish(c, d, errno, true)
				return
			}
		}
		tid, dup, sa := int(c.n.Tid), c.dup.Int(), c.sa
		s.blockingConnect(c, &d, abstract, func(gaveUp func() bool) (syscall.Errno, error) {
			if abstract {
				connect := s.unixConnector(c, gaveUp)
				return s.deputy.RunAsTarget(tid, false, func() syscall.Errno { return connect(&sa) })
			}
			return emulate.Connect(dup, &sa), nil
		})
	})
}

// startBlockingInet starts a blocking TCP connect without blocking and
// finishes it at once when the handshake is already done (loopback), or
// hands it to the waiter.
func (s *Supervisor) startBlockingInet(c *call, d policy.Decision) {
	errno := emulate.StartConnect(c.dup.Int(), &c.sa, c.info.Flags)
	if errno == syscall.EINPROGRESS {
		s.noteDNS(c.dup.Int(), &c.dest, c.info.Type) // the SYN is out: the port is known
	}
	// EALREADY: the program connects again while a connect it gave up on
	// is still under way; natively the blocking call waits for it too.
	if errno != syscall.EINPROGRESS && errno != syscall.EALREADY {
		s.finish(c, d, errno, true)
		return
	}
	if emulate.Writable(c.dup.Int()) {
		if e := emulate.FinishConnect(c.dup.Int(), &c.sa, c.info.Flags); e != syscall.EALREADY {
			s.finish(c, d, e, true)
			return
		}
	}
	p := &pendingConnect{c: c.takeOver(), d: d, onExpiry: errno}
	timeo := emulate.SendTimeout(p.c.dup.Int())
	p.key, p.tracked = s.repeats.begin(p.c, timeo > 0)
	if timeo > 0 {
		p.deadline = p.c.start.Add(timeo)
	}
	if !s.waiter.add(p) {
		if p.tracked {
			s.repeats.drop(p.key)
		}
		s.finish(p.c, d, syscall.EAGAIN, false)
	}
}

// heldOrClosed finishes the call off the loop: f gets the call, and with
// it the duplicate (takeOver), which is closed when f returns if f did
// not answer already. Past the bound on held calls it fails closed.
func (s *Supervisor) heldOrClosed(c *call, d policy.Decision, f func(held *call)) {
	held := c.takeOver()
	if !s.hold(c.n.ID, func() {
		defer held.release()
		f(held)
	}) {
		s.log.Warn("too many held calls, failing closed", zap.Int("limit", maxHeldCalls))
		s.finish(held, d, syscall.EAGAIN, false)
	}
}

// finish answers the call with errno (reply: the duplicate goes first)
// and records it. performed says the connect really happened, so a
// restart of the same call must get this result again.
func (s *Supervisor) finish(c *call, d policy.Decision, errno syscall.Errno, performed bool) {
	if performed && (errno == 0 || errno == syscall.EINPROGRESS) {
		s.noteDNS(c.dup.Int(), &c.dest, c.info.Type) // the connect bound it
	}
	s.identifyForLog(c, d)
	// The restart's key needs the duplicate, which reply closes.
	var key repeatKey
	keyed := false
	if performed {
		key, keyed = keyOf(c)
	}
	if delivered := s.reply(c, Errno(errno)); !delivered && keyed {
		s.repeats.keep(key, errno)
	}
	s.logDecision(c, d, errno)
}

// sleepWhileValid waits for d while the target still waits for us.
func (s *Supervisor) sleepWhileValid(c *call, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		time.Sleep(min(left, pollValidEvery))
		if !stillValid(s.listener, c.n.ID) {
			return false
		}
	}
}

// identifyForLog reads the process's pid and executable when the decision
// will be logged or reported. It runs before the answer: once answered,
// the thread may exit and its tid be reused, and the log would name the
// wrong process.
func (s *Supervisor) identifyForLog(c *call, d policy.Decision) {
	if c.proc.Pid == 0 && s.wantsIdentity(d) {
		c.proc, _ = emulate.Identify(int(c.n.Tid))
	}
}

// wantsIdentity reports whether the decision will be logged or reported,
// so the process's pid and executable are worth reading.
func (s *Supervisor) wantsIdentity(d policy.Decision) bool {
	return s.onDecision != nil || s.log.Core().Enabled(logLevel(d))
}

// logLevel: a log rule asks for warn level, and so does a would-deny of
// audit mode (what the trial is for, so -q keeps it); everything else,
// injected faults included (the test author asked for them), is info,
// which -q hides.
func logLevel(d policy.Decision) zapcore.Level {
	if d.Action == policy.Log || d.WouldDeny {
		return zap.WarnLevel
	}
	return zap.InfoLevel
}

// decisionName is the log's "decision" field: the action, or
// "would-deny" for a connect that audit mode allowed.
func decisionName(d policy.Decision) string {
	if d.WouldDeny {
		return "would-deny"
	}
	return d.Action.String()
}

func (s *Supervisor) logDecision(c *call, d policy.Decision, result syscall.Errno) {
	latency := time.Since(c.start)
	s.stats.recordDecision(summaryKey(c.dest, d.Host), d, latency)
	if s.onDecision != nil {
		if c.proc.Pid == 0 {
			c.proc, _ = emulate.Identify(int(c.n.Tid))
		}
		s.onDecision(Event{
			Time: c.start, Tid: int(c.n.Tid), Pid: c.proc.Pid, Exe: c.proc.Exe,
			Syscall: syscallName(c.n.Nr), Dest: c.dest, Decision: d, Result: result, Latency: latency,
			Delivery: c.delivery,
		})
	}
	ce := s.log.Check(logLevel(d), syscallName(c.n.Nr))
	if ce == nil {
		return
	}
	if c.proc.Pid == 0 {
		// Best effort: the target may be gone already.
		c.proc, _ = emulate.Identify(int(c.n.Tid))
	}
	rule := "default"
	if d.Rule != nil {
		rule = d.Rule.Origin()
	}
	errno := errnoField(result)
	if d.WouldDeny {
		// what the rule would have answered; result says what the
		// allowed call returned
		errno = wouldErrnoName(d)
	}
	fields := []zap.Field{
		zap.String("decision", decisionName(d)),
		zap.Int("tid", int(c.n.Tid)),
		zap.Int("pid", c.proc.Pid),
		zap.String("exe", c.proc.Exe),
		zap.String("syscall", syscallName(c.n.Nr)),
		zap.String("family", familyName(c.dest.Family)),
		zap.String("dest", c.dest.String()),
		zap.String("rule", rule),
		zap.String("errno", errno),
		zap.Duration("latency", latency),
	}
	if d.WouldDeny {
		fields = append(fields, zap.String("result", errnoField(result)))
	}
	if c.dest.Addr.IsValid() {
		fields = append(fields, zap.String("addr", c.dest.Addr.String()), zap.Uint16("port", c.dest.Port))
	}
	if d.Host != "" {
		fields = append(fields, zap.String("host", d.Host), zap.Stringer("host_via", d.HostVia))
	}
	if d.Action == policy.Fail {
		// errno is what the call returned; these say what was injected
		// and how the program gets it.
		fields = append(fields, zap.String("injected", injectedName(d)), zap.Stringer("delivery", c.delivery))
	}
	ce.Write(fields...)
}

// injectedName is the fault a fail decision injects: its errno, or
// "blackhole".
func injectedName(d policy.Decision) string {
	if d.Blackhole {
		return "blackhole"
	}
	return policy.ErrnoName(d.Errno)
}

// wouldErrnoName is the errno an audited decision would have answered, or
// "blackhole".
func wouldErrnoName(d policy.Decision) string {
	if d.Rule != nil && d.Rule.Decision().Blackhole {
		return "blackhole"
	}
	return policy.ErrnoName(d.WouldErrno)
}

// errnoField is the errno the target got, empty for success.
func errnoField(e syscall.Errno) string {
	if e == 0 {
		return ""
	}
	return policy.ErrnoName(e)
}

func syscallName(nr int32) string {
	switch int(nr) {
	case unix.SYS_CONNECT:
		return "connect"
	case unix.SYS_SENDTO:
		return "sendto"
	case unix.SYS_SENDMSG:
		return "sendmsg"
	case unix.SYS_SENDMMSG:
		return "sendmmsg"
	}
	return "syscall"
}

func familyName(f uint16) string {
	switch f {
	case syscall.AF_INET:
		return "inet"
	case syscall.AF_INET6:
		return "inet6"
	case syscall.AF_UNIX:
		return "unix"
	case syscall.AF_UNSPEC:
		return "unspec"
	case syscall.AF_NETLINK:
		return "netlink"
	case syscall.AF_PACKET:
		return "packet"
	}
	return "other"
}

func archName(a uint32) string {
	switch a {
	case unix.AUDIT_ARCH_X86_64:
		return "x86_64"
	case unix.AUDIT_ARCH_I386:
		return "i386"
	case unix.AUDIT_ARCH_AARCH64:
		return "aarch64"
	}
	return "unknown"
}
