package tarpit

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
)

// HeldConnect is a connect in progress on a socket the caller owns, toward a
// tarpit that never answers.
type HeldConnect struct {
	dup   int  // the caller's; never closed here
	v4    bool // the connect runs over IPv4 (AF_INET, or IPv4-mapped)
	fam   *loopbackFamily
	local sockAddr // the socket's address as the SYN carries it

	mu        sync.Mutex
	capturing bool   // the SYN is still to be read from the family's capture
	syn       []byte // the SYN's IP header and first 8 bytes of TCP header
	isn       uint32
	sentAt    time.Time

	userTimeout    int  // the program's TCP_USER_TIMEOUT, restored once done
	ourTimeout     int  // the value we set
	touchedTimeout bool // we changed TCP_USER_TIMEOUT

	// private is a full listener of this hold's own, closed to refuse
	// the connect at its next SYN retransmission (unprivileged tarpits).
	private *listener
}

// Fail ends the held connect with errno, as the network would, and returns
// once the kernel has failed it (poll then reports the socket writable with
// an error, SO_ERROR holds errno). ErrNotAsync: this errno has no network
// event behind it (see Set.FailsAsync).
//
// ETIMEDOUT is exact when Fail comes before the kernel's first SYN
// retransmission (1 s) or when TimeoutAt armed it; otherwise it lands at the
// kernel's next retransmission timer, up to one RTO late.
func (h *HeldConnect) Fail(errno syscall.Errno) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.private != nil && errno == unix.ECONNREFUSED {
		return h.refuseAtRetransmit()
	}
	if !failsAsyncPrivileged(unix.AF_INET6, h.v4, errno) {
		return fmt.Errorf("%w: %v", ErrNotAsync, errno)
	}
	if st, err := emulate.TCPStateOf(h.dup); err != nil {
		return err
	} else if st != emulate.TCPSynSent {
		if errno == unix.ETIMEDOUT && h.touchedTimeout && st == emulate.TCPClose {
			// TimeoutAt's timer has already fired.
			h.restoreTimeout()
			return nil
		}
		return ErrNotInProgress
	}
	switch errno {
	case unix.ECONNRESET:
		return h.reset()
	case unix.ETIMEDOUT:
		return h.timeout(time.Now())
	case unix.ECONNREFUSED:
		return h.refuse()
	}
	return h.sendICMP(errno)
}

// TimeoutAt arranges for the kernel itself to fail the connect with
// ETIMEDOUT at deadline, as an unanswered SYN does when TCP_USER_TIMEOUT
// runs out (or earlier, if the program's own TCP_USER_TIMEOUT says so).
// Call it right after Hold when the planned errno is ETIMEDOUT, then Fail
// (ETIMEDOUT) at the deadline to collect it.
func (h *HeldConnect) TimeoutAt(deadline time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.timeoutAt(deadline)
}

// Close releases what the hold still uses (not dup, which the caller owns)
// and gives the program back its TCP_USER_TIMEOUT. A connect that was not
// failed stays in progress.
func (h *HeldConnect) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closeCapture()
	h.closePrivate()
	if h.touchedTimeout {
		h.restoreTimeout()
	}
}

// Leave releases what the hold uses, like Close, but leaves the socket as
// it is: a blackhole's TCP_USER_TIMEOUT (TimeoutAt) must stay to fail the
// connect when it runs out, after the caller has let go of the socket.
// A Close after it does nothing more.
func (h *HeldConnect) Leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closeCapture()
	h.closePrivate()
	h.touchedTimeout = false
}

// closePrivate closes the hold's private listener, if any; idempotent.
func (h *HeldConnect) closePrivate() {
	h.private.close()
	h.private = nil
}

// refuseAtRetransmit closes the hold's private listener, so that the next
// SYN retransmission meets a closed port and the kernel's reset refuses
// the connect, and waits for it.
func (h *HeldConnect) refuseAtRetransmit() error {
	if st, err := emulate.TCPStateOf(h.dup); err != nil {
		return err
	} else if st != emulate.TCPSynSent {
		return ErrNotInProgress
	}
	h.closePrivate()
	if err := waitClosed(h.dup, h.rto()+refusalSlack); err != nil {
		return fmt.Errorf("wait for the refusal at the next SYN retransmission: %w", err)
	}
	return nil
}

// rto is the held socket's current retransmission timeout: the next SYN
// retransmission comes within it.
func (h *HeldConnect) rto() time.Duration {
	info, err := unix.GetsockoptTCPInfo(h.dup, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return firstRetransmit
	}
	return time.Duration(info.Rto) * time.Microsecond
}

// reset: tcp_disconnect in SYN_SENT sets ECONNRESET and sends nothing.
// It leaves sk_shutdown clear where a connect failed by the network has it
// full (tcp_done), so the second shutdown, which fails with ENOTCONN on the
// now closed socket, sets it as tcp_done would: poll then reports the same
// POLLIN|POLLRDHUP as after a real failure.
func (h *HeldConnect) reset() error {
	if err := unix.Shutdown(h.dup, unix.SHUT_RDWR); err != nil {
		return fmt.Errorf("shutdown in SYN_SENT: %w", err)
	}
	unix.Shutdown(h.dup, unix.SHUT_RDWR)
	return nil
}

// restoreTimeout gives the program back its own TCP_USER_TIMEOUT, unless
// the program has set a new one meanwhile.
func (h *HeldConnect) restoreTimeout() {
	h.touchedTimeout = false
	if v, err := unix.GetsockoptInt(h.dup, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); err != nil || v != h.ourTimeout {
		return
	}
	unix.SetsockoptInt(h.dup, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, h.userTimeout)
}

// timeoutAt sets TCP_USER_TIMEOUT so that it runs out at deadline, measured
// from the SYN, and makes the retransmission timer follow it.
func (h *HeldConnect) timeoutAt(deadline time.Time) error {
	ms := deadline.Sub(h.sentAt).Milliseconds()
	if ms < 1 {
		ms = 1 // 0 would switch the user timeout off
	}
	if h.userTimeout > 0 && int64(h.userTimeout) < ms {
		ms = int64(h.userTimeout) // natively, the program's would win
	}
	if err := unix.SetsockoptInt(h.dup, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(ms)); err != nil {
		return fmt.Errorf("setsockopt TCP_USER_TIMEOUT: %w", err)
	}
	h.touchedTimeout = true
	h.ourTimeout = int(ms)
	info, err := unix.GetsockoptTCPInfo(h.dup, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return fmt.Errorf("getsockopt TCP_INFO: %w", err)
	}
	if info.Retransmits > 0 || !h.fam.tcp.Valid() {
		// The timer is clamped to the user timeout at its next firing
		// (without a raw socket to kick it, the first one is at 1 s).
		return nil
	}
	// Before the first retransmission the timer waits a whole initial
	// RTO (1 s) unclamped: an unacceptable ACK re-arms it at once.
	return h.kick()
}

// timeout fails the connect with ETIMEDOUT now and waits for it.
func (h *HeldConnect) timeout(now time.Time) error {
	if err := h.timeoutAt(now); err != nil {
		return err
	}
	// Without a kick the timer fires within the current RTO.
	if err := waitClosed(h.dup, h.rto()+timeoutSlack); err != nil {
		return fmt.Errorf("wait for ETIMEDOUT: %w", err)
	}
	h.restoreTimeout()
	return nil
}

var errNoSYNYet = errors.New("the held connect's SYN has not been captured")

// closeCapture forgets the held connect's claim on the shared capture
// (the capture itself belongs to the tarpit family).
func (h *HeldConnect) closeCapture() {
	if !h.capturing {
		return
	}
	h.capturing = false
	h.fam.capMu.Lock()
	delete(h.fam.stash, h.local)
	h.fam.capMu.Unlock()
}

// readSYN waits up to wait for the held socket's SYN on the family's
// capture and keeps the headers an ICMP error must quote. SYNs of other
// held connects met on the way are stashed for them.
func (h *HeldConnect) readSYN(wait time.Duration) error {
	if h.syn != nil {
		return nil
	}
	if !h.capturing {
		return errors.New("no capture for the held connect's SYN")
	}
	f := h.fam
	f.capMu.Lock()
	defer f.capMu.Unlock()
	if c, ok := f.stash[h.local]; ok {
		delete(f.stash, h.local)
		h.syn, h.isn, h.capturing = c.quote, c.isn, false
		return nil
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, captureBuf)
	for {
		n, _, err := unix.Recvfrom(f.capture.Int(), buf, 0)
		if err == unix.EAGAIN {
			if err := pollUntil(f.capture.Int(), unix.POLLIN, deadline); err == errDeadline {
				return errNoSYNYet
			} else if err != nil {
				return fmt.Errorf("capture: %w", err)
			}
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read capture: %w", err)
		}
		src, quote, isn, ok := parseSYN(buf[:n], h.v4)
		if !ok {
			continue
		}
		c := capturedSYN{quote: append([]byte(nil), quote...), isn: isn}
		if src == h.local {
			h.syn, h.isn, h.capturing = c.quote, c.isn, false
			return nil
		}
		if len(f.stash) >= maxStash {
			clear(f.stash)
		}
		f.stash[src] = c
	}
}

// sendICMP fails the held connect with errno by an ICMP error quoting its
// SYN, as a router or the destination host would send it.
func (h *HeldConnect) sendICMP(errno unix.Errno) error {
	if err := h.readSYN(0); err != nil {
		return fmt.Errorf("%w: %v", ErrNotAsync, err)
	}
	code, ok := icmpOf(errno, h.v4)
	if !ok {
		return fmt.Errorf("%w: %v", ErrNotAsync, errno)
	}
	what := fmt.Sprintf("ICMP type %d code %d", code.typ, code.code)
	return h.sendUntilFailed(h.fam.icmp.Int(), icmpError(code, h.syn, h.v4), what)
}

// refuse fails the held connect with ECONNREFUSED by the reset a closed
// port answers a SYN with (tcp_v4_send_reset, tcp_v6_send_reset: RST|ACK,
// sequence 0, acknowledging the SYN), which tcp_rcv_synsent_state_process
// takes as a refusal (tcp_reset), as for a native refused connect.
//
// Not an ICMP port unreachable: over IPv4, tcp_v4_err in SYN_SENT (Linux
// 6.18) queues the ICMP error on the socket's error queue even without
// IP_RECVERR, and that wakes pollers before tcp_done_with_error sets
// sk_err. A program woken then sees POLLERR alone and reads SO_ERROR 0,
// and its error queue holds an error no reset leaves. A real ICMP refusal
// (a firewall's REJECT) does that too, but the refusal a program meets
// nearly always, and the one it is compared with, is a closed port's
// reset.
func (h *HeldConnect) refuse() error {
	if !h.fam.tcp.Valid() {
		return fmt.Errorf("%w: no raw TCP socket to send a reset", ErrNotAsync)
	}
	if err := h.readSYN(0); err != nil {
		return fmt.Errorf("%w: %v", ErrNotAsync, err)
	}
	seg := tcpSegment(h.fam.addr, h.fam.port, h.local, tcpFlagRST|tcpFlagACK, h.isn+1, 0)
	return h.sendUntilFailed(h.fam.tcp.Int(), seg, "RST")
}

// sendUntilFailed sends msg, a packet that fails the held connect, on the
// raw socket sock to the held socket's address, and again until the
// connect has failed. An ICMP error that meets the socket owned by a
// system call is only recorded as a soft error (tcp_v4_err, tcp_v6_err)
// and must be sent again; a reset then waits in the socket's backlog and
// is processed at release_sock, so it is sent again only when a loaded
// machine processes it later than the wait, and the late copy meets a
// closed socket that is no longer hashed and is dropped.
func (h *HeldConnect) sendUntilFailed(sock int, msg []byte, what string) error {
	dst := h.fam.sockaddrOf(h.local.ip, 0)
	for try := 0; try < failTries; try++ {
		if err := unix.Sendto(sock, msg, 0, dst); err != nil {
			return fmt.Errorf("send %s to %v: %w", what, h.local.ip, err)
		}
		if err := waitClosed(h.dup, failRetry); err == nil {
			return nil
		}
	}
	return fmt.Errorf("the held connect ignored %s", what)
}

// kick sends the held socket an ACK that does not acknowledge its SYN.
// Before any retransmission, tcp_rcv_synsent_state_process then re-arms
// the retransmission timer to TCP_TIMEOUT_MIN (and answers with a RST that
// the tarpit drops).
func (h *HeldConnect) kick() error {
	// ack == isn == snd_una: unacceptable.
	seg := tcpSegment(h.fam.addr, h.fam.port, h.local, tcpFlagACK, h.isn, kickWindow)
	if err := unix.Sendto(h.fam.tcp.Int(), seg, 0, h.fam.sockaddrOf(h.local.ip, 0)); err != nil {
		return fmt.Errorf("send ACK to %v: %w", h.local.ip, err)
	}
	return nil
}
