package supervisor

import (
	"sync"
	"syscall"
)

// A thread makes one system call at a time, so a send notification from a
// thread whose earlier send is still held means the earlier call was
// interrupted by a signal, and this one is its restart (SA_RESTART) or the
// program's retry after EINTR. Natively the interrupted call would have
// returned what it had sent: the new call gets that count and the held
// send stops. When nothing was sent yet, the held send goes on and answers
// the new call instead. Either way the peer never gets more than the
// program is told was sent, and nothing is sent twice.

// heldSend is a send finished off the loop. Its lock is held while a step
// sends, so a take-over sees every byte sent.
type heldSend struct {
	key   repeatKey
	mu    sync.Mutex
	id    uint64 // the notification it answers
	sent  int64  // bytes (stream) or sendmmsg entries sent so far
	ended bool   // answered, given up, or taken over
	// settled is open while the answer is being given: whether it reached
	// the program decides whether the thread's next send is the restart
	// (and gets what was sent) or a new call, so a restart waits for it.
	settled chan struct{}
}

// heldSends are the sends held off the loop, by thread.
type heldSends struct {
	mu    sync.Mutex
	byTid map[uint32]*heldSend
}

// beginHeldSend registers c's send, which has sent sent so far, as held.
// It runs on the loop, before the loop can receive the call's restart,
// while c still owns the duplicate of the socket.
func (s *Supervisor) beginHeldSend(c *call, sent int64) *heldSend {
	k, _ := sendKeyOf(c)
	h := &heldSend{key: k, id: c.n.ID, sent: sent}
	s.sends.mu.Lock()
	defer s.sends.mu.Unlock()
	if old := s.sends.byTid[c.n.Tid]; old != nil {
		old.mu.Lock()
		old.ended = true
		old.mu.Unlock()
	}
	s.sends.byTid[c.n.Tid] = h
	return h
}

// takeOverSend answers or joins c when it restarts an interrupted send,
// and reports whether it did.
func (s *Supervisor) takeOverSend(c *call) bool {
	for {
		took, settling := s.takeOverSendOnce(c)
		if settling == nil {
			return took
		}
		<-settling
	}
}

// takeOverSendOnce is takeOverSend, or the channel to wait on when the
// held send's answer is being given right now.
func (s *Supervisor) takeOverSendOnce(c *call) (bool, chan struct{}) {
	s.sends.mu.Lock()
	h := s.sends.byTid[c.n.Tid]
	if h != nil && h.settled != nil {
		s.sends.mu.Unlock()
		return false, h.settled
	}
	if h == nil {
		s.sends.mu.Unlock()
		if r, hit := s.repeats.takeSent(c); hit {
			s.reply(c, r)
			return true, nil
		}
		return false, nil
	}
	defer s.sends.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if k, ok := sendKeyOf(c); !ok || k != h.key || h.ended {
		// Another call: the held one is over, and what it sent is lost to
		// a program that was told EINTR.
		h.ended = true
		delete(s.sends.byTid, c.n.Tid)
		return false, nil
	}
	if h.sent > 0 {
		h.ended = true
		delete(s.sends.byTid, c.n.Tid)
		s.reply(c, Value(h.sent))
		return true, nil
	}
	h.id = c.n.ID
	return true, nil
}

// heldValid reports whether the call h answers still waits.
func (s *Supervisor) heldValid(h *heldSend) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return s.heldWaits(h)
}

// heldWaits reports, with h.mu held, whether the call h answers still
// waits. A call found gone with nothing sent ends h there and then, in the
// same step: a restart received after that is a new call (natively the
// interrupted call sent nothing), where joining would have left it to a
// held send about to give up without answering it.
func (s *Supervisor) heldWaits(h *heldSend) bool {
	if h.ended {
		return false
	}
	if stillValid(s.listener, h.id) {
		return true
	}
	if h.sent == 0 {
		h.ended = true
	}
	return false
}

// heldStep runs one sending step under h's lock, only while its call still
// waits; add is what the step sent. ok is false when the call is over.
func (s *Supervisor) heldStep(h *heldSend, step func() (add int64)) (ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !s.heldWaits(h) {
		return false
	}
	h.sent += step()
	return true
}

// answerHeldSend ends h and, unless a restart took the call over, answers
// it with what was sent (answerSend). gone: nobody waits; what was sent is
// kept for a restart that comes after. While the answer is being given, h
// stays the thread's held send, settling, so that a restart arriving then
// waits to learn whether the answer reached the program (then it is a new
// call) or not (then it gets what was sent, which is never sent twice).
func (s *Supervisor) answerHeldSend(op *sendOp, h *heldSend, gone bool, sent int64, errno syscall.Errno) {
	c := op.c
	s.sends.mu.Lock()
	h.mu.Lock()
	mine := s.sends.byTid[c.n.Tid] == h
	if h.ended {
		// Taken over by a restart, or found gone with nothing sent.
		if mine && h.settled == nil {
			delete(s.sends.byTid, c.n.Tid)
		}
		h.mu.Unlock()
		s.sends.mu.Unlock()
		return
	}
	h.ended = true
	if gone {
		if mine {
			delete(s.sends.byTid, c.n.Tid)
		}
		if h.sent > 0 {
			s.repeats.putSentKey(h.key, Value(h.sent))
		}
		h.mu.Unlock()
		s.sends.mu.Unlock()
		return
	}
	c.n.ID = h.id
	if mine {
		h.settled = make(chan struct{})
	}
	h.mu.Unlock()
	s.sends.mu.Unlock()
	if mine {
		// Settled even if answering panics: a restart waits for it on
		// the loop.
		defer func() {
			s.sends.mu.Lock()
			if s.sends.byTid[c.n.Tid] == h {
				delete(s.sends.byTid, c.n.Tid)
			}
			close(h.settled)
			s.sends.mu.Unlock()
		}()
	}
	s.answerSend(op, sent, errno)
}

// dropHeldSend ends h when its goroutine could not be started: the loop
// answers the call itself.
func (s *Supervisor) dropHeldSend(c *call, h *heldSend) {
	s.sends.mu.Lock()
	defer s.sends.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = true
	if s.sends.byTid[c.n.Tid] == h {
		delete(s.sends.byTid, c.n.Tid)
	}
}

// heldEntryDone counts a sendmmsg entry sent off the loop.
func (s *Supervisor) heldEntryDone(h *heldSend) {
	h.mu.Lock()
	h.sent++
	h.mu.Unlock()
}
