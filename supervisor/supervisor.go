package supervisor

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/dnslearn"
	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/emulate/tarpit"
	"github.com/connvisor/connvisor/internal/fd"
	"github.com/connvisor/connvisor/policy"
)

// Supervisor answers the notifications of one listener.
type Supervisor struct {
	listener *fd.FD // the seccomp listener; closed by stop
	policy   atomic.Pointer[policy.Policy]
	log      *zap.Logger
	opts     Options

	stopFD   *fd.FD // eventfd: the loop stops when it is readable (none: at hang-up only)
	loopDone chan struct{}
	treeGone chan struct{} // closed when the listener hangs up
	held     sync.WaitGroup
	heldSem  chan struct{}
	// copySlots bounds the held sends that hold a copy of their data at
	// once (each at most a few MiB, for one step).
	copySlots chan struct{}

	// loops: the receiving threads; loopDone is closed when all ended.
	loops    sync.WaitGroup
	turn     chan struct{} // with several receivers: whose turn it is to RECV
	goneOnce sync.Once
	// tidLocks orders the handling of one thread's calls across
	// receivers: a restarted call (SA_RESTART) must find what the
	// handling of the call it restarts registered (a held send, a connect
	// under way), as it did when one loop handled everything in turn.
	// Striped by tid, so different threads rarely share one.
	tidLocks [tidLockStripes]sync.Mutex
	repeats  repeatTable
	sends    heldSends
	arch     uint32

	onDecision func(Event)
	stats      *Stats
	// tarpits hold faulted nonblocking connects in progress; nil when the
	// supervisor lacks CAP_NET_RAW (faults are then answered directly).
	tarpits *tarpit.Set
	// waiter finishes blocking TCP connects without a thread each; nil
	// when it could not be set up (they are then held on goroutines).
	waiter *connectWaiter
	// deputy makes UNIX connects and sends with the target's identity.
	deputy *emulate.Deputy
	// copier copies sends out of targets; nil when its guard page could
	// not be mapped (sends then fail closed).
	copier *emulate.Copier
	// stoppable: Stop or Detach may come while the processes still use
	// the filter (Supervise); the receiving thread must notice at once.
	stoppable bool
	// claimsAnyPid: the supervisor may send SCM_CREDENTIALS with another
	// process's pid (CAP_SYS_ADMIN), so a target's own pid goes as is.
	claimsAnyPid bool

	stopOnce sync.Once

	// names learns the names the tree resolves from its DNS answers; nil
	// without CAP_NET_RAW.
	names *dnslearn.Learner

	warnedMu sync.Mutex
	warned   map[string]bool // fault rules already warned about, by origin and text
}

// Event is one decision, as the decision log and the Go API see it.
type Event struct {
	Time     time.Time
	Tid      int
	Pid      int
	Exe      string
	Syscall  string
	Dest     policy.Dest
	Decision policy.Decision
	// Result is the errno the target got (0: success; EINPROGRESS for a
	// nonblocking connect under way).
	Result  syscall.Errno
	Latency time.Duration
	// Delivery says, for an injected fault (Decision.Action is
	// policy.Fail), how Decision.Errno reaches the program: as Result, or
	// later through poll and SO_ERROR after EINPROGRESS.
	Delivery Delivery
}

func newSupervisor(listener *fd.FD, p *policy.Policy, log *zap.Logger, opts Options, deputy *emulate.Deputy) *Supervisor {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Supervisor{
		listener:  listener,
		log:       log,
		opts:      opts,
		loopDone:  make(chan struct{}),
		treeGone:  make(chan struct{}),
		heldSem:   make(chan struct{}, maxHeldCalls),
		copySlots: make(chan struct{}, maxCopySteps),
		arch:      nativeAuditArch(),
		stats:     newStats(),
		deputy:    deputy,
	}
	s.repeats.init()
	s.sends.byTid = make(map[uint32]*heldSend)
	s.policy.Store(p)
	if cp, err := emulate.NewCopier(); err == nil {
		s.copier = cp
	} else {
		log.Error("sends with a destination will fail closed", zap.Error(err))
	}
	if self, err := emulate.ReadSender(os.Getpid()); err == nil {
		s.claimsAnyPid = self.Has(unix.CAP_SYS_ADMIN)
	}
	if t, err := tarpit.New(); err == nil {
		s.tarpits = t
	} else {
		log.Warn("no tarpits: faults on nonblocking sockets are answered by connect itself", zap.Error(err))
	}
	s.names = newNames(p, opts, log)
	s.warnLimits(p)
	return s
}

// SetPolicy swaps the policy atomically.
func (s *Supervisor) SetPolicy(p *policy.Policy) {
	s.policy.Store(p)
	s.warnLimits(p)
}

// warnLimits warns, once per rule, about each fault rule of p that this
// supervisor cannot inject exactly as the network would (without
// privileges, see package tarpit), naming the rule and what differs.
func (s *Supervisor) warnLimits(p *policy.Policy) {
	if s.tarpits != nil && s.tarpits.Privileged() {
		return
	}
	s.warnedMu.Lock()
	defer s.warnedMu.Unlock()
	for _, r := range p.Rules() {
		key := r.Origin() + " " + r.String()
		if r.Action() != policy.Fail || s.warned[key] {
			continue
		}
		d := r.Decision()
		errno, wait := d.Errno, d.Delay
		if d.Blackhole {
			errno, wait = 0, d.Timeout
		}
		var differs string
		if s.tarpits == nil {
			differs = "connect itself returns the fault on nonblocking TCP sockets (no tarpit could be made)"
		} else {
			differs = s.tarpits.Limits(errno, wait)
		}
		if differs == "" {
			continue
		}
		if s.warned == nil {
			s.warned = make(map[string]bool)
		}
		s.warned[key] = true
		s.log.Warn("fault differs without privileges (CAP_NET_RAW, CAP_NET_ADMIN)",
			zap.String("rule", r.Origin()), zap.String("fault", r.String()), zap.String("differs", differs))
	}
}

// Policy returns the policy in force.
func (s *Supervisor) Policy() *policy.Policy { return s.policy.Load() }

// HeldCalls is the number of trapped calls held off the notification loop
// right now (blocking connects, delays, blackholes), for a gauge.
func (s *Supervisor) HeldCalls() int { return len(s.heldSem) }

// Stats returns the counters of the decisions made so far.
func (s *Supervisor) Stats() *Stats { return s.stats }

func (s *Supervisor) start() {
	// Linux 6.6 brought SYNC_WAKE_UP and, with it, a RECV that waits on
	// the listener's own wait queue: it is woken on the target's CPU too,
	// and returns ENOENT once no task uses the filter (recv_wait_event).
	// There several threads can block in RECV, with no poll before it.
	// Older kernels keep one thread that polls first (their RECV would
	// block for ever once the targets are gone).
	// A supervisor that may be stopped while its processes still run (an
	// agent's Stop and Detach) polls first too: a thread blocked in RECV
	// would see the stop only at the next call, and a call it then
	// received in a process about to hand over and exit would never be
	// answered.
	direct := !s.stoppable
	if err := setSyncWakeup(s.listener); err != nil {
		direct = false
		s.log.Warn("sync wake-up unavailable (Linux 6.6+): every supervised call costs ~50 µs more", zap.Error(err))
	}
	if w, err := newConnectWaiter(s); err == nil {
		s.waiter = w
	} else {
		s.log.Warn("no epoll waiter: blocking connects each hold a thread", zap.Error(err))
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		// Without a stop fd the loop ends at hang-up only.
		s.log.Warn("eventfd for stopping the loop", zap.Error(err))
	}
	s.stopFD = fd.New(stop)
	n := 1
	if direct {
		n = s.receiverCount()
	}
	if n > 1 {
		s.turn = make(chan struct{}, 1)
		s.turn <- struct{}{}
	}
	for range n {
		s.loops.Add(1)
		go s.loop(direct)
	}
	go func() {
		s.loops.Wait()
		close(s.loopDone)
	}()
}

// maxReceivers bounds the threads receiving from the listener.
const maxReceivers = 64

// receiverCount is how many threads receive, from Options.Receivers.
func (s *Supervisor) receiverCount() int { return max(1, min(s.opts.Receivers, maxReceivers)) }

// receiver is what one receiving thread alone uses: no lock on its path.
type receiver struct {
	pidfds map[uint32]*fd.FD // pidfd per thread id, the receiver's own
}

func newReceiver() *receiver { return &receiver{pidfds: make(map[uint32]*fd.FD)} }

// pidfd returns a pidfd for tid, borrowed from the receiver's cache
// (cached says it was open already): valid while the receiver handles
// this call, never to be kept or closed by it. A cached one whose thread
// died answers ESRCH later, and is dropped then; a live one cannot belong
// to another thread, since a tid is not reused while its thread lives.
func (r *receiver) pidfd(tid uint32) (pidfd int, cached bool, err error) {
	if p, ok := r.pidfds[tid]; ok {
		return p.Int(), true, nil
	}
	n, err := emulate.OpenThread(int(tid))
	if err != nil {
		return -1, false, err
	}
	if len(r.pidfds) >= maxCachedPidfds {
		r.close()
	}
	r.pidfds[tid] = fd.New(n)
	return n, false, nil
}

// drop closes tid's cached pidfd, if any.
func (r *receiver) drop(tid uint32) {
	r.pidfds[tid].Close()
	delete(r.pidfds, tid)
}

// close empties the cache.
func (r *receiver) close() {
	for tid, p := range r.pidfds {
		p.Close()
		delete(r.pidfds, tid)
	}
}

// stop ends the loop, waits for held calls, and closes every fd.
func (s *Supervisor) stop() {
	if s.stopFD.Valid() {
		var one [8]byte
		one[0] = 1
		unix.Write(s.stopFD.Int(), one[:])
	}
	// Held calls still use the listener. Most end within pollValidEvery
	// once their targets are gone; a UNIX connect blocked on a full
	// backlog ends only when that listener moves, so it is not waited for
	// long: the last held call closes the listener instead. A receiving
	// thread blocked in RECV sees the stop fd only when RECV returns,
	// which it does once no task uses the filter (stop follows that).
	released := make(chan struct{})
	go func() {
		<-s.loopDone
		s.stopFD.Close()
		s.held.Wait()
		if s.waiter != nil {
			s.waiter.stop()
		}
		if s.tarpits != nil {
			s.tarpits.Close()
		}
		if s.names != nil {
			s.names.Close()
		}
		s.deputy.Close()
		if s.copier != nil {
			s.copier.Close()
		}
		// Closing the listener makes any call still trapped fail with
		// ENOSYS: fail closed, never open.
		s.listener.Close()
		close(released)
	}()
	select {
	case <-released:
	case <-time.After(stopGrace):
		s.log.Warn("connects still held after the command ended; they finish in the background")
	}
}

// waitTreeGone blocks until no task uses the filter any more.
func (s *Supervisor) waitTreeGone() {
	select {
	case <-s.treeGone:
	case <-s.loopDone:
	}
}

// loop receives, decides and answers on one locked OS thread, so a fast
// decision needs no hand-off between threads (and SYNC_WAKE_UP can wake it
// on the target's CPU). Anything that may block is handed to a goroutine.
// direct: block in RECV itself (Linux 6.6+, see start); else poll first.
func (s *Supervisor) loop(direct bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer s.loops.Done()
	r := newReceiver()
	defer r.close()
	fds := []unix.PollFd{{Fd: int32(s.listener.Int()), Events: unix.POLLIN}}
	if s.stopFD.Valid() {
		fds = append(fds, unix.PollFd{Fd: int32(s.stopFD.Int()), Events: unix.POLLIN})
	}
	// With several receivers, one at a time holds the turn to call RECV
	// (the kernel wakes every thread waiting in RECV for each call); it
	// passes the turn on when more calls wait while it handles one, and
	// when it ends, so the next one sees the end too.
	turn := s.turn
	if turn != nil {
		<-turn
		defer func() { turn <- struct{}{} }()
	}
	var n Notification
	for {
		if !direct {
			// RECV would block even after every target died: poll first.
			if _, err := unix.Poll(fds, -1); err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				s.log.Error("poll listener", zap.Error(err))
				return
			}
			if s.stopping(fds) {
				return
			}
			if fds[0].Revents&unix.POLLIN == 0 {
				continue
			}
		}
		err := receive(s.listener, &n)
		if err == nil {
			if turn != nil && s.morePending() {
				turn <- struct{}{}
				s.handleSurviving(r, &n)
				<-turn
				continue
			}
			s.handleSurviving(r, &n)
			continue
		}
		if !errors.Is(err, errGone) {
			s.log.Error("receive notification", zap.Error(err))
			return
		}
		// ENOENT: a target was interrupted before we took its call, or
		// (direct) no task uses the filter any more.
		if direct {
			if _, err := unix.Poll(fds, 0); err == nil && s.stopping(fds) {
				return
			}
		}
	}
}

// morePending reports whether another call waits to be received.
func (s *Supervisor) morePending() bool {
	fds := [1]unix.PollFd{{Fd: int32(s.listener.Int()), Events: unix.POLLIN}}
	n, err := unix.Poll(fds[:], 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}

// stopping reports, after a poll of the listener and the stop fd, whether
// the loop ends: stop was asked, or no task uses the filter any more.
func (s *Supervisor) stopping(fds []unix.PollFd) bool {
	if len(fds) > 1 && fds[1].Revents != 0 {
		return true
	}
	re := fds[0].Revents
	if re&unix.POLLIN == 0 && re&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
		s.goneOnce.Do(func() { close(s.treeGone) })
		return true
	}
	return false
}

// handleSurviving handles n; a panic fails n closed and the loop goes on.
// One thread's calls are handled one at a time, in the order received.
func (s *Supervisor) handleSurviving(r *receiver, n *Notification) {
	mu := &s.tidLocks[n.Tid%uint32(len(s.tidLocks))]
	mu.Lock()
	defer mu.Unlock()
	defer s.survive(n.ID, "handle")
	s.handle(r, n)
}

// answer sends r for n and reports whether the target got it.
func (s *Supervisor) answer(id uint64, r Response) bool {
	err := send(s.listener, id, r)
	if err == nil {
		return true
	}
	if !errors.Is(err, errGone) {
		s.log.Error("answer notification", zap.Uint64("id", id), zap.Error(err))
	}
	return false
}

// hold runs f, which answers notification id, off the loop, within the
// bound on held calls. It reports false when the bound is reached, and the
// caller fails the call closed. A panic in f fails id closed.
func (s *Supervisor) hold(id uint64, f func()) bool {
	select {
	case s.heldSem <- struct{}{}:
	default:
		return false
	}
	s.held.Add(1)
	go func() {
		defer s.held.Done()
		defer func() { <-s.heldSem }()
		defer s.survive(id, "held call")
		f()
	}()
	return true
}

func nativeAuditArch() uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64
	}
	return 0
}
