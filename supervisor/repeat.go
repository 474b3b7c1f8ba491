package supervisor

import (
	"encoding/binary"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
)

// A trapped call interrupted by a signal with SA_RESTART is restarted by
// the kernel and notified again, although the supervisor may already have
// made (or still be making) the connect. Natively the program would see
// one connect; a second one on the socket would answer EALREADY or
// EISCONN. repeatTable remembers connects that are under way or whose
// answer could not be delivered, so the restarted call joins or gets that
// answer instead.
type repeatTable struct {
	mu      sync.Mutex
	entries map[repeatKey]*repeatEntry
}

type repeatKey struct {
	tid  uint32
	fd   uint32
	file emulate.FileID // the open socket fd names
	alen int
	addr [emulate.MaxSockaddrLen]byte
}

type repeatEntry struct {
	// timed: the socket has SO_SNDTIMEO. A blocking connect with a
	// timeout is not restarted after a signal (sock_intr_errno gives
	// EINTR, not ERESTARTSYS), so a restart the seccomp wait caused is
	// answered EINTR instead of joining.
	timed   bool
	done    bool
	result  syscall.Errno
	expires time.Time
	waiters []uint64 // notification ids that joined a connect under way
	sent    int64    // a send's count, for its restart
	// settled is open while the connect's answer is being given: whether
	// it reached the program decides what a restart gets, so take waits.
	settled chan struct{}
}

type repeatOutcome int

const (
	repeatMiss        repeatOutcome = iota
	repeatHit                       // answer with the stored result
	repeatJoined                    // the held connect answers this notification too
	repeatInterrupted               // answer EINTR, as the timed connect would have
)

func (t *repeatTable) init() { t.entries = make(map[repeatKey]*repeatEntry) }

// socketKey names c's thread and socket: the descriptor number and the
// open socket it names (a dup2 onto the number makes another key).
func socketKey(c *call) (repeatKey, bool) {
	file, ok := emulate.FileOf(c.dup.Int())
	if !ok {
		return repeatKey{}, false
	}
	return repeatKey{tid: c.n.Tid, fd: uint32(c.n.Args[0]), file: file}, true
}

// keyOf names c's connect: its thread, socket and the address as asked (a
// restarted call passes the same bytes again).
func keyOf(c *call) (repeatKey, bool) {
	k, ok := socketKey(c)
	k.alen = c.asked.Len()
	copy(k.addr[:], c.asked.Bytes())
	return k, ok
}

// sendKeyOf names a send call: its thread, socket and every argument, so
// only a restart of the same call matches. The negative length keeps sends
// apart from connects.
func sendKeyOf(c *call) (repeatKey, bool) {
	k, ok := socketKey(c)
	if !ok {
		return k, false
	}
	k.alen = -int(c.n.Nr) - 1
	// Only the arguments the call takes: the other registers may hold
	// anything when the program calls again after EINTR.
	used := 5 // sendto(fd, buf, len, flags, addr, addrlen)
	switch int(c.n.Nr) {
	case unix.SYS_SENDMSG:
		used = 2 // msg, flags
	case unix.SYS_SENDMMSG:
		used = 3 // vec, vlen, flags
	}
	for i, a := range c.n.Args[1 : 1+used] {
		binary.NativeEndian.PutUint64(k.addr[8*i:], a)
	}
	return k, true
}

// putSentKey stores the answer of an interrupted send (the count it had
// sent, or its errno) for its restart.
func (t *repeatTable) putSentKey(k repeatKey, r Response) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep()
	t.entries[k] = &repeatEntry{done: true, sent: r.Val, result: r.Errno, expires: time.Now().Add(repeatTTL)}
}

// takeSent returns the answer stored for c's send, once.
func (t *repeatTable) takeSent(c *call) (Response, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 {
		return Response{}, false
	}
	k, ok := sendKeyOf(c)
	if !ok {
		return Response{}, false
	}
	e, ok := t.entries[k]
	if !ok {
		return Response{}, false
	}
	delete(t.entries, k)
	if e.result != 0 {
		return Errno(e.result), time.Now().Before(e.expires)
	}
	return Value(e.sent), time.Now().Before(e.expires)
}

// take looks c up. It costs nothing while the table is empty, which is
// almost always.
func (t *repeatTable) take(c *call) (syscall.Errno, repeatOutcome) {
	for {
		r, outcome, settling := t.takeOnce(c)
		if settling == nil {
			return r, outcome
		}
		<-settling
	}
}

// takeOnce is take, or the channel to wait on when the connect's answer is
// being given right now.
func (t *repeatTable) takeOnce(c *call) (syscall.Errno, repeatOutcome, chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 {
		return 0, repeatMiss, nil
	}
	k, ok := keyOf(c)
	if !ok {
		return 0, repeatMiss, nil
	}
	e, ok := t.entries[k]
	if !ok {
		return 0, repeatMiss, nil
	}
	if e.settled != nil {
		return 0, repeatMiss, e.settled
	}
	if !e.done {
		if c.info.NonBlock {
			// The program made the socket nonblocking after it gave up
			// waiting: natively this call answers at once (EALREADY,
			// EAGAIN), so it is made, not joined.
			return 0, repeatMiss, nil
		}
		if e.timed {
			return syscall.EINTR, repeatInterrupted, nil
		}
		e.waiters = append(e.waiters, c.n.ID)
		return 0, repeatJoined, nil
	}
	delete(t.entries, k)
	if time.Now().After(e.expires) {
		return 0, repeatMiss, nil
	}
	return e.result, repeatHit, nil
}

// begin registers a connect under way; end completes it and returns the
// notifications that joined it.
func (t *repeatTable) begin(c *call, timed bool) (repeatKey, bool) {
	k, ok := keyOf(c)
	if !ok {
		return k, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep()
	t.entries[k] = &repeatEntry{timed: timed}
	return k, true
}

func (t *repeatTable) waiters(k repeatKey) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[k]; ok {
		return append([]uint64(nil), e.waiters...)
	}
	return nil
}

// answering marks a connect under way as being answered and returns the
// notifications that joined it. Until answered settles it, a restart
// waits: if the answer reached the program, its next call is a new one;
// if not, that call is the restart and gets the answer.
func (t *repeatTable) answering(k repeatKey) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[k]
	if !ok {
		return nil
	}
	e.settled = make(chan struct{})
	w := e.waiters
	e.waiters = nil
	return w
}

// answered settles an answer given: kept for the restart (keep), or
// forgotten.
func (t *repeatTable) answered(k repeatKey, keep bool, result syscall.Errno) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[k]
	if !ok || e.settled == nil {
		return
	}
	ch := e.settled
	if keep {
		*e = repeatEntry{done: true, result: result, expires: time.Now().Add(repeatTTL)}
	} else {
		delete(t.entries, k)
	}
	close(ch)
}

// keep stores the result of a connect whose answer nobody took, for the
// restarted call.
func (t *repeatTable) keep(k repeatKey, result syscall.Errno) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep()
	t.entries[k] = &repeatEntry{done: true, result: result, expires: time.Now().Add(repeatTTL)}
}

// sweep drops expired answers; called with mu held.
func (t *repeatTable) sweep() {
	if len(t.entries) < repeatSweepFrom {
		return
	}
	now := time.Now()
	for k, e := range t.entries {
		if e.done && now.After(e.expires) {
			delete(t.entries, k)
		}
	}
}

// drop forgets a connect under way that nobody waits for any more.
func (t *repeatTable) drop(k repeatKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, k)
}

// abandon forgets the connect under way when neither its own notification
// (orig) nor any restart that joined it still waits, and reports whether
// it did. The check and the removal are one step, so a restart cannot
// join a connect that is being given up.
func (t *repeatTable) abandon(k repeatKey, orig uint64, valid func(id uint64) bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if valid(orig) {
		return false
	}
	if e, ok := t.entries[k]; ok {
		for _, id := range e.waiters {
			if valid(id) {
				return false
			}
		}
		delete(t.entries, k)
	}
	return true
}
