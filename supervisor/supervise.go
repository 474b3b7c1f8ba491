package supervisor

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
	"github.com/connvisor/connvisor/policy"
)

// Supervising a listener someone else made
//
// A container runtime loads the filter itself (from an OCI profile, see
// FilterRules) and hands the listener to an agent over a UNIX socket. The
// processes behind it are not the agent's children: there is no stub and
// no exec, only the listener. Supervise runs the same engine as Cmd on it.

// SuperviseConfig tunes Supervise. The zero value logs nothing and keeps
// its own counters.
type SuperviseConfig struct {
	// Logger receives one event per decision (give it the fields that
	// name the container: they go on every line).
	Logger *zap.Logger
	// Options: only the ones that concern answering apply (WaitKillable,
	// KeepPtrace and the Allow* options are the filter's business, which
	// the runtime loaded).
	Options Options
	// Stats, when set, is shared: several listeners of one container
	// count into one summary.
	Stats *Stats
	// OnDecision, when set, is called for every decision; it must be quick.
	OnDecision func(Event)
}

// Supervise answers the notifications of listener, a seccomp listener
// whose filter another process loaded, under p, until the listener hangs
// up (every process behind it is gone; Done is closed) or Stop or Detach
// is called. It owns listener from then on, whatever it returns.
//
// Like Cmd.Start, it makes the calling process non-dumpable, so that the
// supervised processes (which may run as the same user) cannot take the
// listener or write the supervisor's memory.
func Supervise(listener int, p *policy.Policy, cfg SuperviseConfig) (*Supervisor, error) {
	l := fd.New(listener)
	defer l.Close() // unless the supervisor takes it
	if p == nil {
		return nil, errors.New("supervise: no policy")
	}
	if err := checkNotifSizes(); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			return nil, ErrNoUserNotif
		}
		return nil, err
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("make the supervisor non-dumpable: %w", err)
	}
	deputy, err := emulate.NewDeputy()
	if err != nil {
		return nil, fmt.Errorf("prepare to act for the supervised processes: %w", err)
	}
	s := newSupervisor(l.Move(), p, cfg.Logger, cfg.Options, deputy)
	if cfg.Stats != nil {
		s.stats = cfg.Stats
	}
	s.onDecision = cfg.OnDecision
	s.stoppable = true
	s.start()
	return s, nil
}

// Done is closed when the supervisor stops answering: the listener hung
// up (no process uses the filter any more), Stop or Detach was called, or
// the listener failed (logged). Call Stop then to release what it holds.
func (s *Supervisor) Done() <-chan struct{} { return s.loopDone }

// Stop stops answering, waits a little for the calls it holds, and closes
// the listener: every call trapped from then on fails with ENOSYS (fail
// closed), unless another process holds the listener too (Detach).
func (s *Supervisor) Stop() {
	s.stopOnce.Do(s.stop)
}

// Detach stops answering and returns a duplicate of the listener (close on
// exec), for another process to answer from, as an agent's upgrade does.
// Calls already received are finished here first (within a grace of a
// couple of seconds; slower ones finish in the background); calls not yet
// received wait in the kernel for whoever reads the listener next.
func (s *Supervisor) Detach() (int, error) {
	dup, err := unix.FcntlInt(uintptr(s.listener.Int()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("duplicate the listener: %w", err)
	}
	s.Stop()
	return dup, nil
}
