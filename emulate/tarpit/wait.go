package tarpit

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
)

// errDeadline: pollUntil's deadline has passed.
var errDeadline = errors.New("deadline passed")

// pollUntil polls fd once for events, for what is left until deadline;
// errDeadline once it has passed. An interrupted poll is not an error: the
// caller checks its condition again and polls again.
func pollUntil(fd int, events int16, deadline time.Time) error {
	left := time.Until(deadline)
	if left <= 0 {
		return errDeadline
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
		return fmt.Errorf("poll: %w", err)
	}
	return nil
}

// waitPastSynSent waits up to wait until the connect on fd is no longer in
// progress and returns the state it reached. It does not read SO_ERROR,
// which belongs to the program.
func waitPastSynSent(fd int, wait time.Duration) (emulate.TCPState, error) {
	deadline := time.Now().Add(wait)
	for {
		st, err := emulate.TCPStateOf(fd)
		if err != nil || st != emulate.TCPSynSent {
			return st, err
		}
		// SYN_SENT polls without POLLOUT; any end of it brings POLLOUT.
		if err := pollUntil(fd, unix.POLLOUT, deadline); err == errDeadline {
			return st, errors.New("connect still in progress")
		} else if err != nil {
			return st, err
		}
	}
}

// waitClosed waits until the connect on fd has failed (or otherwise left
// SYN_SENT).
func waitClosed(fd int, wait time.Duration) error {
	_, err := waitPastSynSent(fd, wait)
	return err
}

// waitConnected waits for a nonblocking connect on fd to be established.
func waitConnected(fd int, wait time.Duration) error {
	st, err := waitPastSynSent(fd, wait)
	if err == nil && st != emulate.TCPEstablished {
		err = fmt.Errorf("TCP state %d", st)
	}
	return err
}
