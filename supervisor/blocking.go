package supervisor

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/emulate/tarpit"
	"github.com/connvisor/connvisor/policy"
)

// blockingConnect performs a connect that may block (a blocking stream
// socket, or one made as the target on a thread of its own) off the loop.
// The kernel's own blocking connect runs on the duplicate, so SO_SNDTIMEO,
// backlogs and SYN retries behave as natively. While it waits, the target
// may give up (a signal, or death); a restarted call joins this connect.
// op may settle the decision itself (a UNIX pathname is decided once
// resolved), so d is read only after op returns. selfCancels says op
// polls gaveUp and stops by itself (UNIX connects retry without blocking);
// otherwise a watcher aborts a connect nobody waits for.
func (s *Supervisor) blockingConnect(c *call, d *policy.Decision, selfCancels bool, op func(gaveUp func() bool) (syscall.Errno, error)) {
	key, tracked := s.repeats.begin(c, emulate.SendTimeout(c.dup.Int()) > 0)
	var gaveUpOnce atomic.Bool // op stopped because nobody waited: nothing was made
	gaveUp := func() bool {
		gone := false
		if !tracked {
			gone = !stillValid(s.listener, c.n.ID)
		} else {
			gone = s.repeats.abandon(key, c.n.ID, func(id uint64) bool { return stillValid(s.listener, id) })
		}
		if gone {
			gaveUpOnce.Store(true)
		}
		return gone
	}
	type result struct {
		errno syscall.Errno
		err   error
	}
	tid, dup := int(c.n.Tid), c.dup.Int()
	if selfCancels || !c.info.ConnectBlocks() {
		// Cannot block, or stops by itself when the target gives up: no
		// watcher needed.
		errno, err := op(gaveUp)
		if err != nil {
			s.log.Error("connect as target", zap.Int("tid", tid), zap.Error(err))
			errno = syscall.EACCES
		}
		s.completeHeld(c, d, key, tracked, errno, !gaveUpOnce.Load())
		return
	}
	done := make(chan result, 1)
	go func() {
		e, err := op(gaveUp)
		done <- result{e, err}
	}()
	tick := time.NewTicker(pollValidEvery)
	defer tick.Stop()
	abandoned := false
	for {
		select {
		case r := <-done:
			errno := r.errno
			if r.err != nil {
				// Could not act as the target: fail closed.
				s.log.Error("connect as target", zap.Int("tid", tid), zap.Error(r.err))
				errno = syscall.EACCES
			}
			s.completeHeld(c, d, key, tracked, errno, !gaveUpOnce.Load())
			return
		case <-tick.C:
			if abandoned || s.someoneWaits(c, key, tracked) {
				continue
			}
			// Natively a connect the program stopped waiting for goes on
			// (TCP keeps sending SYNs) while the program holds the
			// socket. Once it no longer does, nobody would ever see the
			// connection: abort it rather than hold it for minutes.
			if !emulate.TargetHolds(tid, c.n.Args[0], dup) {
				unix.Shutdown(dup, unix.SHUT_RDWR)
				abandoned = true
			}
		}
	}
}

// completeHeld answers a held connect, and every restart of it that
// joined, with errno; an answer nobody took stays for the next restart
// when the connect was made (performed).
func (s *Supervisor) completeHeld(c *call, d *policy.Decision, key repeatKey, tracked bool, errno syscall.Errno, performed bool) {
	if performed && errno == 0 {
		s.noteDNS(c.dup.Int(), &c.dest, c.info.Type)
	}
	s.identifyForLog(c, *d)
	var joined []uint64
	if tracked {
		joined = s.repeats.answering(key)
	}
	delivered := s.reply(c, Errno(errno))
	for _, id := range joined {
		delivered = s.answer(id, Errno(errno)) || delivered
	}
	if tracked {
		s.repeats.answered(key, performed && !delivered, errno)
	}
	s.logDecision(c, *d, errno)
}

// someoneWaits reports whether the notification, or a restart that joined
// it, still waits for an answer.
func (s *Supervisor) someoneWaits(c *call, key repeatKey, tracked bool) bool {
	if stillValid(s.listener, c.n.ID) {
		return true
	}
	if tracked {
		for _, id := range s.repeats.waiters(key) {
			if stillValid(s.listener, id) {
				return true
			}
		}
	}
	return false
}

// inject answers a connect with an injected fault: after the delay, the
// errno; or, for a blackhole, never until the timeout or the target gives
// up. A nonblocking TCP socket sees what a real failed connect shows: the
// call returns EINPROGRESS, and the failure arrives through poll and
// SO_ERROR (package tarpit); a blackhole stays in progress.
func (s *Supervisor) inject(c *call, d policy.Decision) {
	if s.injectAsync(c, d) {
		return
	}
	if d.Blackhole && c.info.NonBlock && c.info.Type == syscall.SOCK_STREAM {
		// Nothing can hold this connect in progress (injectAsync said
		// why), and a nonblocking program's own timeout cannot interrupt
		// a call held here: a blackhole must never outlive it, so it
		// times out at once (a UNIX socket: EAGAIN, what a listener
		// that never accepts gives a nonblocking connect).
		errno := syscall.ETIMEDOUT
		if c.dest.Family == syscall.AF_UNIX {
			errno = syscall.EAGAIN
		}
		s.answerFault(c, d, errno)
		return
	}
	s.answerFault(c, d, s.faultWait(c, d))
}

// answerFault answers an injected fault with errno, the call's immediate
// result. The decision is logged first: once answered, the program may
// connect again at once, and its next decision, made on the loop, must
// not be reported before this one.
func (s *Supervisor) answerFault(c *call, d policy.Decision, errno syscall.Errno) {
	s.identifyForLog(c, d)
	s.logDecision(c, d, errno)
	s.answer(c.n.ID, Errno(errno))
	c.dup.Close()
}

// injectAsync holds a nonblocking TCP connect in progress toward a tarpit
// and fails it later, as the network would. It reports false when the
// socket or errno does not allow it, and the fault is answered directly.
func (s *Supervisor) injectAsync(c *call, d policy.Decision) bool {
	inet := c.dest.Family == syscall.AF_INET || c.dest.Family == syscall.AF_INET6
	if s.tarpits == nil || !c.info.NonBlock || c.info.Type != syscall.SOCK_STREAM || !inet {
		return false
	}
	mapped := c.dest.Family == syscall.AF_INET6 && c.dest.Addr.Is4In6()
	if !d.Blackhole && !s.tarpits.FailsAsync(c.info.Domain, mapped, d.Errno) {
		return false
	}
	refuse := !d.Blackhole && d.Errno == syscall.ECONNREFUSED
	if refuse && d.Delay == 0 {
		// The kernel's own reset from a closed loopback port.
		if err := s.tarpits.Refuse(c.dup.Int(), c.info.Domain, mapped); err != nil {
			s.log.Warn("cannot refuse the connect asynchronously: connect itself returns the fault",
				zap.Uint32("tid", c.n.Tid), zap.String("dest", c.dest.String()), zap.Error(err))
			return false
		}
		c.delivery = DeliveredAsync
		s.answerFault(c, d, syscall.EINPROGRESS)
		return true
	}
	hold := s.tarpits.Hold
	if refuse {
		hold = s.tarpits.HoldRefusable
	}
	h, err := hold(c.dup.Int(), c.info.Domain, mapped)
	if err != nil {
		s.log.Warn("cannot hold the connect in progress: connect itself returns the fault (a blackhole: ETIMEDOUT at once)",
			zap.Uint32("tid", c.n.Tid), zap.String("dest", c.dest.String()), zap.Error(err))
		return false
	}
	defer h.Close() // if a panic cuts the paths below short
	start := time.Now()
	switch {
	case d.Blackhole && d.Timeout > 0:
		h.TimeoutAt(start.Add(d.Timeout))
	case !d.Blackhole && d.Errno == syscall.ETIMEDOUT:
		h.TimeoutAt(start.Add(d.Delay))
	}
	c.delivery = DeliveredAsync
	if d.Blackhole && d.Timeout == 0 {
		c.delivery = DeliveredInProgress
	}
	s.identifyForLog(c, d)
	s.logDecision(c, d, syscall.EINPROGRESS)
	s.answer(c.n.ID, Errno(syscall.EINPROGRESS))
	if d.Blackhole {
		// Stays in progress: SYNs to the tarpit go unanswered, until the
		// rule's timeout or the kernel's own SYN retries give up. The hold
		// lets go first: it uses the duplicate's number.
		h.Leave()
		c.dup.Close()
		return true
	}
	if wait := time.Until(start.Add(d.Delay)); wait > 0 {
		time.Sleep(wait)
	}
	if err := h.Fail(d.Errno); err != nil && !errors.Is(err, tarpit.ErrNotInProgress) {
		s.log.Warn("injected fault not delivered", zap.Error(err))
	}
	h.Close() // before the duplicate: it uses its number
	c.dup.Close()
	return true
}

// faultWait waits out a fault's delay (or a blackhole's timeout) while the
// target waits, and returns the errno to answer. The socket's SO_SNDTIMEO
// bounds the wait as it bounds a real blocking connect: when it runs out
// first, the answer is what its expiry gives natively.
func (s *Supervisor) faultWait(c *call, d policy.Decision) syscall.Errno {
	wait, errno := d.Delay, d.Errno
	if d.Blackhole {
		wait, errno = d.Timeout, syscall.ETIMEDOUT
		if wait == 0 {
			wait = -1 // until the target gives up, or SO_SNDTIMEO
		}
	}
	if w, expired := sndTimeoBound(c, wait); expired {
		wait, errno = w, sndTimeoErrno(c)
	}
	if wait < 0 {
		for stillValid(s.listener, c.n.ID) {
			time.Sleep(pollValidEvery)
		}
		return syscall.EINTR
	}
	if !s.sleepWhileValid(c, wait) {
		return syscall.EINTR
	}
	return errno
}

// sndTimeoBound returns the socket's SO_SNDTIMEO and true when it is set
// and shorter than wait (negative: forever) on a socket whose connect it
// bounds (a blocking connection-mode socket).
func sndTimeoBound(c *call, wait time.Duration) (time.Duration, bool) {
	if !c.info.ConnectBlocks() {
		return 0, false
	}
	t := emulate.SendTimeout(c.dup.Int())
	if t <= 0 || (wait >= 0 && wait <= t) {
		return 0, false
	}
	return t, true
}

// sndTimeoErrno is what a connect whose SO_SNDTIMEO ran out returns:
// EINPROGRESS for TCP (the handshake goes on), EAGAIN for UNIX.
func sndTimeoErrno(c *call) syscall.Errno {
	if c.dest.Family == syscall.AF_UNIX {
		return syscall.EAGAIN
	}
	return syscall.EINPROGRESS
}
