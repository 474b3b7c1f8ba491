package supervisor

import "time"

// The supervisor's bounds and timings, in one place. Each says why it has
// its value; a change here changes how the supervisor behaves under load
// or when targets die, never what a program observes of one call.

// Bounds on what the supervisor holds at once.
const (
	// maxHeldCalls bounds the trapped calls held off the notification
	// loop at once (blocking connects, delays, sends waiting for room).
	// Each costs a goroutine and, while it blocks in the kernel, an OS
	// thread; past the bound new ones fail closed (EAGAIN).
	maxHeldCalls = 8192
	// maxCopySteps bounds the steps of held sends that hold a copy of
	// their data at once: 16 × the 4 MiB a stream step copies at most.
	maxCopySteps = 16
	// maxCachedPidfds bounds one receiving loop's pidfd cache; past it the
	// cache is emptied (a tree with more live threads reopens some).
	maxCachedPidfds = 4096
	// tidLockStripes is how many locks order the handling of one
	// thread's calls across receivers (striped by tid).
	tidLockStripes = 64
	// repeatSweepFrom: the restart table drops expired answers only once
	// it holds this many, so the common case (a few entries) never scans.
	repeatSweepFrom = 64
	// waiterEventsPerWait is how many finished handshakes one epoll_wait
	// of the waiter returns at most; more are returned by the next.
	waiterEventsPerWait = 64
)

// Timings.
const (
	// pollValidEvery is how often a held call checks that its target
	// still waits (interrupted by a signal, or dead): a program that gives
	// up waits at most this long for the supervisor to notice.
	pollValidEvery = 20 * time.Millisecond
	// maxCheckEvery: the waiter's validity checks back off from
	// pollValidEvery to this. A connect that waits long is most likely
	// toward a host that does not answer, and a thousand of them must not
	// cost a thousand ioctls every 20 ms.
	maxCheckEvery = 500 * time.Millisecond
	// repeatTTL is how long an undelivered answer waits for its restarted
	// call (a restart comes within microseconds of the signal handler).
	repeatTTL = 2 * time.Second
	// stopGrace is how long stop waits for held calls to end before it
	// leaves them to finish in the background.
	stopGrace = 2 * time.Second
)
