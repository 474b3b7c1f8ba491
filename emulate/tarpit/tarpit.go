package tarpit

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
)

// ErrNotAsync is returned by HeldConnect.Fail for an errno that no network
// event delivers to a connect in progress; the caller answers it
// synchronously instead. Set.FailsAsync tells beforehand.
var ErrNotAsync = errors.New("errno cannot be delivered asynchronously to a connect in progress")

// ErrLoopbackDown is returned by Hold when the loopback interface of the
// socket's network namespace is down, so no tarpit can exist there.
var ErrLoopbackDown = errors.New("loopback interface is down in the socket's network namespace")

// ErrNotInProgress is returned by Fail when the connect is no longer in
// progress (the program shut the socket down or disconnected it).
var ErrNotInProgress = errors.New("connect is no longer in progress")

// icmpCode says which ICMP message makes the kernel fail a connect in
// SYN_SENT with an errno.
type icmpCode struct{ typ, code byte }

// ICMPv4: type 3 (destination unreachable) codes through icmp_err_convert,
// type 11 (time exceeded) and 12 (parameter problem) as tcp_v4_err maps them.
var icmp4Errnos = map[syscall.Errno]icmpCode{
	unix.ENETUNREACH:  {3, 0},
	unix.EHOSTUNREACH: {3, 1},
	unix.ENOPROTOOPT:  {3, 2},
	unix.ECONNREFUSED: {3, 3},
	unix.EOPNOTSUPP:   {3, 5},
	unix.EHOSTDOWN:    {3, 7},
	unix.ENONET:       {3, 8},
	unix.EPROTO:       {12, 0},
}

// ICMPv6 through icmpv6_err_convert: type 1 (destination unreachable) and
// type 4 (parameter problem).
var icmp6Errnos = map[syscall.Errno]icmpCode{
	unix.ENETUNREACH:  {1, 0},
	unix.EACCES:       {1, 1},
	unix.EHOSTUNREACH: {1, 3},
	unix.ECONNREFUSED: {1, 4},
	unix.EPROTO:       {4, 0},
}

// ErrOtherNetns is returned by Hold when the socket lives in another
// network namespace than the supervisor's and the supervisor lacks the
// privileges to enter it.
var ErrOtherNetns = errors.New("the socket lives in another network namespace, which only a privileged supervisor can enter")

// failsAsyncPrivileged reports whether a privileged tarpit can deliver
// errno to a connect held on a socket of this family (AF_INET,
// or AF_INET6 with mappedV4 for an IPv6 socket connecting to an
// IPv4-mapped address, which runs IPv4 underneath).
func failsAsyncPrivileged(family int, mappedV4 bool, errno syscall.Errno) bool {
	switch errno {
	case unix.ETIMEDOUT, unix.ECONNRESET:
		return true
	}
	if family == unix.AF_INET || mappedV4 {
		_, ok := icmp4Errnos[errno]
		return ok
	}
	_, ok := icmp6Errnos[errno]
	return ok
}

// FailsAsync reports whether Fail can deliver errno to a connect held by
// these tarpits: every errno with an ICMP message, ETIMEDOUT and
// ECONNRESET when they are privileged;
// ECONNREFUSED, ETIMEDOUT and ECONNRESET when they are not.
func (t *Set) FailsAsync(family int, mappedV4 bool, errno syscall.Errno) bool {
	if t.raw {
		return failsAsyncPrivileged(family, mappedV4, errno)
	}
	switch errno {
	case unix.ECONNREFUSED, unix.ETIMEDOUT, unix.ECONNRESET:
		return true
	}
	return false
}

// Privileged reports whether the tarpits can speak for the network with
// raw sockets (CAP_NET_RAW) and enter other network namespaces
// (CAP_NET_ADMIN, CAP_SYS_ADMIN): every ICMP errno asynchronously, and
// any delay exactly.
func (t *Set) Privileged() bool { return t.raw }

// firstRetransmit is when the kernel first retransmits an unanswered SYN
// (TCP_TIMEOUT_INIT): without a raw socket to re-arm its timer, nothing
// that waits for a retransmission happens earlier.
const firstRetransmit = time.Second

// Limits says how a fault on a nonblocking TCP connect held by these
// tarpits differs from the network failure it stands for, or "" when it
// does not. errno 0 is a blackhole; wait is its timeout (0: none), or the
// fault's delay.
func (t *Set) Limits(errno syscall.Errno, wait time.Duration) string {
	if t.raw {
		return ""
	}
	switch {
	case errno == 0 || errno == unix.ETIMEDOUT:
		// A blackhole without a timeout (wait 0) is exact; ETIMEDOUT
		// without a delay means at once.
		if (wait > 0 || errno != 0) && wait < firstRetransmit {
			return fmt.Sprintf("ETIMEDOUT arrives after %v, not %v: without CAP_NET_RAW only the kernel's first SYN retransmission can end the connect", firstRetransmit, wait)
		}
	case errno == unix.ECONNRESET:
	case errno == unix.ECONNREFUSED:
		if wait > 0 {
			return fmt.Sprintf("the refusal arrives with the first SYN retransmission after %v, about %v after the connect: without CAP_NET_RAW nothing else can refuse a connect in progress", wait, synRetransmitAfter(wait))
		}
	default:
		msg := fmt.Sprintf("connect itself returns %s on nonblocking TCP sockets, instead of EINPROGRESS then %[1]s through poll and SO_ERROR: without CAP_NET_RAW no ICMP error can be sent", unix.ErrnoName(errno))
		if wait > 0 {
			msg += fmt.Sprintf("; the call is held for %v, during which the program's own timeout cannot fire", wait)
		}
		return msg
	}
	return ""
}

// synRetransmitAfter is when the kernel first retransmits an unanswered
// SYN at or after d from the connect: every TCP_TIMEOUT_INIT for the first
// tcp_syn_linear_timeouts retransmissions (Linux 6.5+, 4 by default: 1 s,
// 2 s, 3 s, 4 s, 5 s), then at doubling intervals (7 s, 11 s, 19 s...).
func synRetransmitAfter(d time.Duration) time.Duration {
	linear := 0
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_syn_linear_timeouts"); err == nil {
		linear, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	at, rto := time.Duration(0), firstRetransmit
	for i := 1; i < 64 && at < d; i++ {
		at += rto
		if i > linear {
			rto *= 2
		}
	}
	return at
}

// Set owns the tarpits, one per network namespace, each shared by every
// held connect in that namespace. The supervisor creates one and
// closes it at the end. A tarpit keeps its network namespace alive until
// Close.
type Set struct {
	mu     sync.Mutex
	self   *emulate.Netns // the supervisor's network namespace
	cookie uint64         // SO_NETNS_COOKIE of the supervisor's namespace; 0: unknown
	raw    bool           // raw and packet sockets can be made
	byNS   map[emulate.NetnsID]*tarpit
	closed bool
}

// New returns an empty set; tarpits are made on first use. Whether
// they are privileged is probed here, once.
func New() (*Set, error) {
	self, err := emulate.OwnNetns()
	if err != nil {
		return nil, err
	}
	t := &Set{self: self, byNS: make(map[emulate.NetnsID]*tarpit), raw: canRaw()}
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
		t.cookie, _ = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		unix.Close(fd)
	}
	return t, nil
}

// canRaw reports whether this process may open raw IP and packet sockets,
// which the privileged tarpit needs.
func canRaw() bool {
	for _, s := range [][3]int{
		{unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP},
		{unix.AF_PACKET, unix.SOCK_DGRAM, 0},
	} {
		fd, err := unix.Socket(s[0], s[1]|unix.SOCK_CLOEXEC, s[2])
		if err != nil {
			return false
		}
		unix.Close(fd)
	}
	return true
}

// Close closes every tarpit. Connects still held stay in progress (their
// SYNs go unanswered, as toward a host that drops them), until the kernel
// gives up after the SYN retries, as it would natively.
func (t *Set) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, tp := range t.byNS {
		tp.close()
		delete(t.byNS, k)
	}
	t.closed = true
}

// HeldConnect is a connect in progress on a socket the caller owns, toward a
// tarpit that never answers.
type HeldConnect struct {
	dup   int
	v4    bool // the connect runs over IPv4 (AF_INET, or IPv4-mapped)
	tp    *tarpit
	fam   *tarpitFamily
	local sockAddr // the socket's address as the SYN carries it

	mu      sync.Mutex
	capture int    // AF_PACKET socket, open until the SYN is seen; -1 then
	syn     []byte // the SYN's IP header and first 8 bytes of TCP header
	isn     uint32
	sentAt  time.Time

	userTimeout    int  // the program's TCP_USER_TIMEOUT, restored once done
	ourTimeout     int  // the value we set
	touchedTimeout bool // we changed TCP_USER_TIMEOUT

	// private is a full listener of this hold's own, closed to refuse
	// the connect at its next SYN retransmission (unprivileged tarpits).
	private *fullListener
}

// Hold connects dup, a duplicate of the program's nonblocking TCP socket,
// to the tarpit of the socket's network namespace, so that the program's
// connect stays in progress (SYN_SENT) with nothing answering and without
// any packet leaving the loopback interface. family is the destination's
// family; mappedV4 says an AF_INET6 socket connects to an IPv4-mapped
// address. The caller answers the program's connect with EINPROGRESS.
//
// The one difference a program can observe is the socket's local address
// (getsockname): a loopback address rather than the one the route to the
// real destination would pick, unless the program had bound the socket
// (after ECONNRESET, tcp_disconnect clears an address it had not bound).
func (t *Set) Hold(dup int, family int, mappedV4 bool) (*HeldConnect, error) {
	return t.hold(dup, family, mappedV4, false)
}

// HoldRefusable is Hold for a connect that Fail will refuse
// (ECONNREFUSED) after a delay. Unprivileged tarpits hold it on a
// listener of its own, closed at Fail, so that the next SYN
// retransmission is refused.
func (t *Set) HoldRefusable(dup int, family int, mappedV4 bool) (*HeldConnect, error) {
	return t.hold(dup, family, mappedV4, !t.raw)
}

// Refuse starts the connect of dup, a duplicate of the program's
// nonblocking TCP socket, toward a loopback port of the supervisor's that
// nobody listens on: the connect returns EINPROGRESS and the kernel's own
// reset fails it at once, so poll and SO_ERROR show ECONNREFUSED as for a
// real refusal. It needs no privileges. The caller answers EINPROGRESS.
func (t *Set) Refuse(dup int, family int, mappedV4 bool) error {
	if err := checkHoldable(dup, family, mappedV4); err != nil {
		return err
	}
	tp, err := t.tarpitFor(dup)
	if err != nil {
		return err
	}
	fam, _, err := tp.prepare(family == unix.AF_INET || mappedV4)
	if err != nil {
		return err
	}
	if err := unix.Connect(dup, fam.sockaddr(fam.closedPort, family == unix.AF_INET6)); err != unix.EINPROGRESS {
		if err == nil {
			return errors.New("connect to a closed port completed")
		}
		return fmt.Errorf("connect to a closed port: %w", err)
	}
	return nil
}

func (t *Set) hold(dup int, family int, mappedV4 bool, private bool) (*HeldConnect, error) {
	if err := checkHoldable(dup, family, mappedV4); err != nil {
		return nil, err
	}
	v4 := family == unix.AF_INET || mappedV4
	tp, err := t.tarpitFor(dup)
	if err != nil {
		return nil, err
	}
	fam, capture, err := tp.prepare(v4)
	if err != nil {
		return nil, err
	}
	h := &HeldConnect{dup: dup, v4: v4, tp: tp, fam: fam, capture: capture}
	if h.userTimeout, err = unix.GetsockoptInt(dup, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); err != nil {
		h.closeCapture()
		return nil, fmt.Errorf("getsockopt TCP_USER_TIMEOUT: %w", err)
	}
	port := fam.port
	if private {
		// Made in the supervisor's namespace: unprivileged tarpits
		// exist only there (tarpitFor checked the socket lives there).
		if h.private, err = newFullListener(v4); err != nil {
			return nil, err
		}
		port = h.private.port
	}
	sa := fam.sockaddr(port, family == unix.AF_INET6)
	h.sentAt = time.Now()
	if err := unix.Connect(dup, sa); err != unix.EINPROGRESS {
		h.closeCapture()
		h.private.close()
		if err == nil {
			// Cannot happen toward a listener that drops SYNs.
			return nil, errors.New("connect to the tarpit completed")
		}
		return nil, fmt.Errorf("connect to the tarpit: %w", err)
	}
	local, err := unix.Getsockname(dup)
	if err != nil {
		h.closeCapture()
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	h.local = sockAddrOf(local)
	// The SYN went through the loopback device during connect; it is
	// normally in the capture's queue already.
	if err := h.readSYN(200 * time.Millisecond); err != nil && !errors.Is(err, errNoSYNYet) {
		h.closeCapture()
		return h, nil // ICMP errnos will be unavailable; the hold stands
	}
	return h, nil
}

func checkHoldable(dup int, family int, mappedV4 bool) error {
	info, errno, err := emulate.Inspect(dup)
	if err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("hold a connect: %w", errno)
	}
	proto, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return fmt.Errorf("hold a connect: getsockopt SO_PROTOCOL: %w", err)
	}
	if info.Type != unix.SOCK_STREAM || proto != unix.IPPROTO_TCP {
		return errors.New("hold a connect: not a TCP socket")
	}
	if !info.NonBlock {
		return errors.New("hold a connect: the socket blocks")
	}
	switch {
	case family == unix.AF_INET && info.Domain == unix.AF_INET && !mappedV4:
	case family == unix.AF_INET6 && info.Domain == unix.AF_INET6:
	default:
		return fmt.Errorf("hold a connect: family %d (mapped %v) on a socket of domain %d", family, mappedV4, info.Domain)
	}
	return nil
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
	h.private.close()
	h.private = nil
	if h.touchedTimeout {
		h.restoreTimeout()
	}
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
	h.private.close()
	h.private = nil
	wait := firstRetransmit
	if info, err := unix.GetsockoptTCPInfo(h.dup, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
		wait = time.Duration(info.Rto) * time.Microsecond
	}
	if err := waitClosed(h.dup, wait+firstRetransmit/2); err != nil {
		return fmt.Errorf("wait for the refusal at the next SYN retransmission: %w", err)
	}
	return nil
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
	if info.Retransmits > 0 || h.fam.tcp < 0 {
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
	wait := time.Second
	if info, err := unix.GetsockoptTCPInfo(h.dup, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
		wait = time.Duration(info.Rto)*time.Microsecond + 100*time.Millisecond
	}
	if err := waitClosed(h.dup, wait); err != nil {
		return fmt.Errorf("wait for ETIMEDOUT: %w", err)
	}
	h.restoreTimeout()
	return nil
}
