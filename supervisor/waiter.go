package supervisor

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
	"github.com/connvisor/connvisor/policy"
)

// connectWaiter waits for the handshakes of blocking TCP connects that the
// supervisor started without blocking (emulate.StartConnect), all in one
// epoll set on one goroutine: a thousand connects stuck in SYN_SENT cost a
// thousand descriptors, not a thousand threads.
type connectWaiter struct {
	s      *Supervisor
	epfd   *fd.FD // the epoll set of the pending connects and wakeFD
	wakeFD *fd.FD // eventfd: poke wakes the waiter

	mu       sync.Mutex
	pending  map[int]*pendingConnect // by the duplicate's fd
	stopping bool
	done     chan struct{}
}

type pendingConnect struct {
	c        *call
	d        policy.Decision
	key      repeatKey
	tracked  bool
	deadline time.Time // from SO_SNDTIMEO; zero when it has none
	// onExpiry is what the call answers when SO_SNDTIMEO runs out: the
	// errno the connect started with (EINPROGRESS, or EALREADY for a
	// connect already under way), as natively.
	onExpiry syscall.Errno
	check    time.Time // when to ask again whether the target still waits
	backoff  time.Duration
}

func newConnectWaiter(s *Supervisor) (*connectWaiter, error) {
	n, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	epfd := fd.New(n)
	defer epfd.Close() // unless the waiter takes it
	n, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	wake := fd.New(n)
	defer wake.Close()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake.Int())}
	if err := unix.EpollCtl(epfd.Int(), unix.EPOLL_CTL_ADD, wake.Int(), &ev); err != nil {
		return nil, err
	}
	w := &connectWaiter{s: s, epfd: epfd.Move(), wakeFD: wake.Move(), pending: make(map[int]*pendingConnect), done: make(chan struct{})}
	go w.run()
	return w, nil
}

// add waits for p's socket to become writable, or for its deadline.
func (w *connectWaiter) add(p *pendingConnect) bool {
	now := time.Now()
	p.backoff = pollValidEvery
	p.check = now.Add(p.backoff)
	w.mu.Lock()
	defer w.mu.Unlock()
	// Bounded like the held calls: each costs a descriptor, and a target
	// with many threads must not exhaust the supervisor's.
	if w.stopping || len(w.pending) >= maxHeldCalls {
		return false
	}
	fd := p.c.dup.Int()
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: int32(fd)}
	if err := unix.EpollCtl(w.epfd.Int(), unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return false
	}
	w.pending[fd] = p
	w.poke()
	return true
}

func (w *connectWaiter) poke() {
	var one [8]byte
	one[0] = 1
	unix.Write(w.wakeFD.Int(), one[:])
}

// take removes fd's entry; nil when another path already took it.
func (w *connectWaiter) take(fd int) *pendingConnect {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pending[fd]
	if p != nil {
		delete(w.pending, fd)
		unix.EpollCtl(w.epfd.Int(), unix.EPOLL_CTL_DEL, fd, nil)
	}
	return p
}

func (w *connectWaiter) run() {
	defer close(w.done)
	events := make([]unix.EpollEvent, waiterEventsPerWait)
	for {
		n, err := unix.EpollWait(w.epfd.Int(), events, w.timeoutMillis())
		if err != nil && !errors.Is(err, unix.EINTR) {
			w.s.log.Error("epoll_wait for held connects", zap.Error(err))
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == w.wakeFD.Int() {
				var buf [8]byte
				unix.Read(w.wakeFD.Int(), buf[:])
				continue
			}
			if p := w.take(int(ev.Fd)); p != nil {
				w.finish(p)
			}
		}
		if w.sweep() {
			return
		}
	}
}

// finish completes a connect whose socket became writable; a panic fails
// it closed and the waiter goes on.
func (w *connectWaiter) finish(p *pendingConnect) {
	defer w.s.survive(p.c.n.ID, "connect waiter")
	errno := emulate.FinishConnect(p.c.dup.Int(), &p.c.sa, p.c.info.Flags)
	if errno == syscall.EALREADY && w.add(p) {
		return // woken while the handshake goes on: wait again
	}
	w.s.completeHeld(p.c, &p.d, p.key, p.tracked, errno, true)
}

// timeoutMillis is how long epoll may sleep: until the next deadline, and
// at most sweepEvery. Validity checks ride on the sweeps rather than
// waking the waiter each at its own time: a thousand held connects must
// not mean thousands of wake-ups a second.
func (w *connectWaiter) timeoutMillis() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return -1
	}
	next := time.Now().Add(sweepEvery)
	for _, p := range w.pending {
		if !p.deadline.IsZero() && p.deadline.Before(next) {
			next = p.deadline
		}
	}
	return max(int(time.Until(next).Milliseconds())+1, 0)
}

// sweepEvery is the waiter's longest sleep while connects are held.
const sweepEvery = pollValidEvery

// sweep answers expired SO_SNDTIMEO deadlines, drops connects whose
// target gave up, and reports whether the waiter should stop.
func (w *connectWaiter) sweep() bool {
	now := time.Now()
	var expired, due []*pendingConnect
	w.mu.Lock()
	if w.stopping {
		for fd, p := range w.pending {
			delete(w.pending, fd)
			p.c.dup.Close()
		}
		w.mu.Unlock()
		return true
	}
	for fd, p := range w.pending {
		switch {
		case !p.deadline.IsZero() && !now.Before(p.deadline):
			expired = append(expired, p)
		case !now.Before(p.check):
			due = append(due, p)
			continue
		default:
			continue
		}
		delete(w.pending, fd)
		unix.EpollCtl(w.epfd.Int(), unix.EPOLL_CTL_DEL, fd, nil)
	}
	w.mu.Unlock()
	for _, p := range expired {
		// SO_SNDTIMEO ran out: a blocking connect returns EINPROGRESS and
		// the handshake goes on, as natively.
		w.s.completeHeld(p.c, &p.d, p.key, p.tracked, p.onExpiry, false)
	}
	for _, p := range due {
		if w.s.someoneWaits(p.c, p.key, p.tracked) {
			p.backoff = min(2*p.backoff, maxCheckEvery)
			p.check = now.Add(p.backoff)
			continue
		}
		// The target stopped waiting (a signal without SA_RESTART, or
		// death). Natively the handshake goes on; a later connect on the
		// socket joins or collects it, so nothing is kept here.
		if w.take(p.c.dup.Int()) != nil {
			if p.tracked {
				w.s.repeats.drop(p.key)
			}
			p.c.dup.Close()
			w.s.logDecision(p.c, p.d, syscall.EINTR)
		}
	}
	return false
}

// stop closes the waiter; connects still waiting are dropped (their
// targets are gone when the supervisor stops).
func (w *connectWaiter) stop() {
	w.mu.Lock()
	w.stopping = true
	w.poke()
	w.mu.Unlock()
	<-w.done
	w.epfd.Close()
	w.wakeFD.Close()
}
