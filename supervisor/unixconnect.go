package supervisor

import (
	"errors"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/policy"
)

// unixPathConnect connects to a UNIX pathname as the target: resolved in
// its view to the socket's inode, decided on the canonical path (so a
// symlink, "..", or a relative name cannot sidestep a rule), and connected
// to that very inode.
// The connect is performed here, so its decision is counted here
// (policy.Count), on each name it is decided on.
func (s *Supervisor) unixPathConnect(c *call, pol *policy.Policy) {
	if err := s.identify(c, pol); err != nil {
		s.log.Error("identify connecting process", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		s.finish(c, policy.Decision{Action: policy.Deny, Errno: syscall.EPERM}, syscall.EPERM, false)
		return
	}
	var d policy.Decision
	decide := func(canonical string) syscall.Errno {
		d = decideName(pol, &c.dest, canonical, d, true)
		switch d.Action {
		case policy.Deny:
			return d.Errno
		case policy.Fail:
			return s.faultWait(c, d)
		}
		if d.Delay > 0 && !s.sleepWhileValid(c, d.Delay) {
			return syscall.EINTR
		}
		return 0
	}
	tid, sa := int(c.n.Tid), c.sa
	s.blockingConnect(c, &d, true, func(gaveUp func() bool) (syscall.Errno, error) {
		return s.deputy.WithUnixPath(tid, &sa, decide, s.unixConnector(c, gaveUp), false)
	})
}

// decideName decides a connect to one name of a UNIX socket; a socket
// with several names (hard links) is decided on each, and prev is the
// decision on the name before. In audit mode every decision allows, so the
// first would-deny is kept (with its name): the log must not lose it to a
// later name that the policy allows. count is true where the connect is
// performed (policy.Count); the inline attempt only looks.
func decideName(pol *policy.Policy, dest *policy.Dest, name string, prev policy.Decision, count bool) policy.Decision {
	if prev.WouldDeny {
		return prev
	}
	dest.Path = name
	d := pol.Decide(dest)
	if count {
		d = pol.Count(dest, nil, d)
	}
	return d
}

// deferred is an errno no kernel call returns: the inline attempt stops
// without connecting because the rest must happen off the loop.
const deferred = syscall.Errno(1 << 16)

// unixPathInline makes a UNIX pathname connect on the loop when that is
// cheap and cannot block: the supervisor sees the filesystem as the target
// does (no thread of its own needed), and the connect answers at once. It
// reports done when the call is answered; otherwise the held path makes
// it. A decision that a fault schedule must count (or a fault, or a
// delay) sends it there: the inline attempt decides without counting.
func (s *Supervisor) unixPathInline(c *call, pol *policy.Policy) (done bool) {
	if pol.NeedsExe() || pol.NeedsUID() {
		return false
	}
	var d policy.Decision
	decided, full := false, false
	decide := func(canonical string) syscall.Errno {
		d, decided = decideName(pol, &c.dest, canonical, d, false), true
		switch {
		case d.Pending() || d.Action == policy.Fail || d.Delay > 0:
			return deferred
		case d.Action == policy.Deny:
			return d.Errno
		}
		return 0
	}
	blockingStream := c.info.ConnectBlocks()
	op := func(name *emulate.Sockaddr) syscall.Errno {
		if !blockingStream {
			return emulate.Connect(c.dup.Int(), name)
		}
		errno := emulate.StartConnect(c.dup.Int(), name, c.info.Flags)
		if errno == syscall.EAGAIN {
			full = true // the listener's backlog is full: wait off the loop
			return deferred
		}
		return errno
	}
	errno, err := s.deputy.WithUnixPath(int(c.n.Tid), &c.sa, decide, op, true)
	switch {
	case errors.Is(err, emulate.ErrNeedsThread):
		return false
	case err != nil:
		s.log.Error("connect as target", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		s.finish(c, policy.Decision{Action: policy.Deny, Errno: syscall.EACCES}, syscall.EACCES, false)
		return true
	case errno == deferred || full:
		return false
	}
	if !decided {
		d = policy.Decision{Action: policy.Allow} // resolution failed: the kernel's errno
	}
	s.finish(c, d, errno, errno == 0)
	return true
}

// unixConnector returns how to connect c's UNIX socket to a name: a
// blocking stream or seqpacket socket waits for backlog room by retrying,
// so that it stops when the target gives up; anything else connects once.
func (s *Supervisor) unixConnector(c *call, gaveUp func() bool) func(name *emulate.Sockaddr) syscall.Errno {
	dup := c.dup.Int()
	if !c.info.ConnectBlocks() {
		return func(name *emulate.Sockaddr) syscall.Errno { return emulate.Connect(dup, name) }
	}
	var deadline time.Time
	if t := emulate.SendTimeout(dup); t > 0 {
		deadline = c.start.Add(t)
	}
	return func(name *emulate.Sockaddr) syscall.Errno {
		return emulate.ConnectUnixRetrying(dup, name, c.info.Flags, deadline, gaveUp)
	}
}
