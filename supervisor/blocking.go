package supervisor

import (
	"errors"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/policy"
)

// blockingConnect performs a connect that may block (a blocking stream
// socket, or a UNIX pathname resolved as the target) off the loop. The
// kernel's own blocking connect runs on the duplicate, so SO_SNDTIMEO,
// backlogs and SYN retries behave as natively. While it waits, the target
// may give up (a signal, or death); a restarted call joins this connect.
func (s *Supervisor) blockingConnect(c *call, d policy.Decision, unixNamed bool) {
	key, tracked := s.repeats.begin(c)
	type result struct {
		errno syscall.Errno
		err   error
	}
	done := make(chan result, 1)
	tid, dup, sa := int(c.n.Tid), c.dup, c.sa
	go func() {
		if unixNamed {
			e, err := emulate.ConnectUnix(tid, dup, &sa, !c.dest.Abstract)
			done <- result{e, err}
			return
		}
		done <- result{emulate.Connect(dup, &sa), nil}
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
			delivered := s.answer(c.n.ID, Errno(errno))
			if tracked {
				for _, id := range s.repeats.waiters(key) {
					delivered = s.answer(id, Errno(errno)) || delivered
				}
				s.repeats.end(key, errno, delivered)
			}
			c.close()
			s.logDecision(c, d, errno)
			return
		case <-tick.C:
			if abandoned || s.someoneWaits(c, key, tracked) {
				continue
			}
			// Natively a connect the program stopped waiting for goes on
			// (TCP keeps sending SYNs) while the program holds the
			// socket. Once it no longer does, nobody would ever see the
			// connection: abort it rather than hold it for minutes.
			if !targetHolds(tid, c.n.Args[0], dup) {
				unix.Shutdown(dup, unix.SHUT_RDWR)
				abandoned = true
			}
		}
	}
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

// targetHolds reports whether thread tid still has descriptor fd open on
// the same socket as dup.
func targetHolds(tid int, fd uint64, dup int) bool {
	pidfd, err := emulate.OpenThread(tid)
	if err != nil {
		return !errors.Is(err, emulate.ErrTargetGone)
	}
	defer unix.Close(pidfd)
	theirs, errno, err := emulate.DupTargetFD(pidfd, fd)
	if err != nil || errno != 0 {
		return err != nil && !errors.Is(err, emulate.ErrTargetGone)
	}
	defer unix.Close(theirs)
	var a, b unix.Stat_t
	if unix.Fstat(theirs, &a) != nil || unix.Fstat(dup, &b) != nil {
		return true
	}
	return a.Ino == b.Ino && a.Dev == b.Dev
}

// inject answers a connect with an injected fault: after the delay, the
// errno; or, for a blackhole, never until the timeout or the target gives
// up. A nonblocking socket sees what a real failed connect shows: the call
// returns EINPROGRESS, and the failure arrives through poll and SO_ERROR.
func (s *Supervisor) inject(c *call, d policy.Decision) {
	wait := d.Delay
	if d.Blackhole {
		wait = blackholeTimeout(c, d)
	}
	if wait < 0 {
		// A blackhole without a timeout: hold until the target gives up.
		for stillValid(s.listener, c.n.ID) {
			time.Sleep(pollValidEvery)
		}
		s.finish(c, d, syscall.EINTR, false)
		return
	}
	if !s.sleepWhileValid(c, wait) {
		s.finish(c, d, syscall.EINTR, false)
		return
	}
	errno := d.Errno
	if d.Blackhole {
		errno = syscall.ETIMEDOUT
		if sndTimeo(c.dup) > 0 && d.Timeout == 0 {
			// SO_SNDTIMEO expiring on a connect is EINPROGRESS.
			errno = syscall.EINPROGRESS
		}
	}
	s.finish(c, d, errno, false)
}

// blackholeTimeout is how long a blackholed blocking connect waits: the
// rule's timeout, else the socket's SO_SNDTIMEO, else forever (-1).
func blackholeTimeout(c *call, d policy.Decision) time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	if t := sndTimeo(c.dup); t > 0 {
		return t
	}
	return -1
}

func sndTimeo(fd int) time.Duration {
	tv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO_OLD)
	if err != nil {
		return 0
	}
	return time.Duration(tv.Sec)*time.Second + time.Duration(tv.Usec)*time.Microsecond
}
