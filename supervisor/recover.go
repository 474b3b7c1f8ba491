package supervisor

import (
	"syscall"

	"go.uber.org/zap"

	"github.com/connvisor/connvisor/policy"
)

// A panic while handling one trapped call must never end supervision: with
// the supervisor gone every trapped call of the tree fails with ENOSYS, so
// one malformed input from one thread would break every program of the
// tree. Each place that handles a call (the loop, held goroutines, the
// connect waiter) defers survive, which fails that call closed and goes on.

// survive recovers a panic raised while handling notification id: the call
// fails closed with EPERM (a no-op when it was answered already), and the
// panic is logged with its stack and counted. It must be deferred directly.
func (s *Supervisor) survive(id uint64, where string) {
	r := recover()
	if r == nil {
		return
	}
	s.internalError(where, r)
	s.answer(id, Errno(syscall.EPERM))
}

// internalError logs and counts a recovered panic.
func (s *Supervisor) internalError(where string, r any) {
	s.log.Error("internal error: the call fails closed and supervision goes on",
		zap.String("where", where), zap.Any("panic", r), zap.Stack("stack"))
	s.stats.record(label("(internal error, failed closed)"), policy.Deny, 0)
}
