package supervisor

import (
	"sync"
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
	s.sends.mu.Lock()
	h := s.sends.byTid[c.n.Tid]
	if h == nil {
		s.sends.mu.Unlock()
		if r, hit := s.repeats.takeSent(c); hit {
			s.answer(c.n.ID, r)
			return true
		}
		return false
	}
	defer s.sends.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if k, ok := sendKeyOf(c); !ok || k != h.key || h.ended {
		// Another call: the held one is over, and what it sent is lost to
		// a program that was told EINTR.
		h.ended = true
		delete(s.sends.byTid, c.n.Tid)
		return false
	}
	if h.sent > 0 {
		h.ended = true
		delete(s.sends.byTid, c.n.Tid)
		s.answer(c.n.ID, Value(h.sent))
		return true
	}
	h.id = c.n.ID
	return true
}

// heldValid reports whether the call h answers still waits.
func (s *Supervisor) heldValid(h *heldSend) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.ended && stillValid(s.listener, h.id)
}

// heldStep runs one sending step under h's lock, only while its call still
// waits; add is what the step sent. ok is false when the call is over.
func (s *Supervisor) heldStep(h *heldSend, step func() (add int64)) (ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended || !stillValid(s.listener, h.id) {
		return false
	}
	h.sent += step()
	return true
}

// endHeldSend ends h: it returns the notification to answer, or false
// when the call was taken over. A call given up (gone) keeps what it sent
// for a restart that comes after.
func (s *Supervisor) endHeldSend(c *call, h *heldSend, gone bool) (uint64, bool) {
	s.sends.mu.Lock()
	defer s.sends.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return 0, false
	}
	h.ended = true
	if s.sends.byTid[c.n.Tid] == h {
		delete(s.sends.byTid, c.n.Tid)
	}
	if gone && h.sent > 0 {
		s.repeats.putSentKey(h.key, Value(h.sent))
	}
	return h.id, !gone
}

// heldEntryDone counts a sendmmsg entry sent off the loop.
func (s *Supervisor) heldEntryDone(h *heldSend) {
	h.mu.Lock()
	h.sent++
	h.mu.Unlock()
}
