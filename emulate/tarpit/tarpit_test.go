package tarpit

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("tarpits need CAP_NET_RAW and CAP_NET_ADMIN (run as root)")
	}
}

// tarpitCase is how the program's socket is made and where its connect was
// going.
type tarpitCase struct {
	name   string
	domain int
	mapped bool
}

var tarpitCases = []tarpitCase{
	{"v4", unix.AF_INET, false},
	{"v6", unix.AF_INET6, false},
	{"v4mapped", unix.AF_INET6, true},
}

func nonblockingTCP(t *testing.T, domain int) int {
	t.Helper()
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func newSet(t *testing.T) *Set {
	t.Helper()
	tp, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tp.Close)
	return tp
}

// hold holds a connect on a fresh socket, through a duplicate as the
// supervisor has one; the test owns fd, the "program's" descriptor.
func hold(t *testing.T, tps *Set, c tarpitCase) (int, *HeldConnect) {
	t.Helper()
	fd := nonblockingTCP(t, c.domain)
	return fd, holdFD(t, tps, fd, c)
}

func holdFD(t *testing.T, tps *Set, fd int, c tarpitCase) *HeldConnect {
	t.Helper()
	h, err := tps.Hold(dupFD(t, fd), c.domain, c.mapped)
	if err != nil {
		t.Fatalf("Hold: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// dupFD duplicates fd as the supervisor does the program's socket; the
// duplicate is closed when the test ends.
func dupFD(t *testing.T, fd int) int {
	t.Helper()
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(dup) })
	return dup
}

// closedLoopbackPort returns the address of a port on 127.0.0.1 that
// nobody listens on (bound, so nobody else takes it while the test runs):
// the kernel answers a SYN to it with a RST, a native refusal.
func closedLoopbackPort(t *testing.T) unix.Sockaddr {
	t.Helper()
	probe := nonblockingTCP(t, unix.AF_INET)
	if err := unix.Bind(probe, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(probe)
	return sa
}

// pollOut polls fd for POLLOUT for up to wait; 0 revents means it timed out.
func pollOut(t *testing.T, fd int, wait time.Duration) int16 {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLOUT}}
	deadline := time.Now().Add(wait)
	for {
		n, err := unix.Poll(pfd, int(time.Until(deadline).Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return 0
		}
		if pfd[0].Revents&unix.POLLOUT != 0 || time.Now().After(deadline) {
			return pfd[0].Revents
		}
	}
}

func assertInProgress(t *testing.T, fd int, d time.Duration) {
	t.Helper()
	if rev := pollOut(t, fd, d); rev != 0 {
		t.Fatalf("poll during the hold: revents %#x, want none", rev)
	}
	if _, err := unix.Getpeername(fd); err != unix.ENOTCONN {
		t.Fatalf("getpeername during the hold: %v, want ENOTCONN", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{192, 0, 2, 99}}); err != unix.EALREADY {
		// A second connect in progress says EALREADY, natively too.
		if !(err == unix.EAFNOSUPPORT || err == unix.EINVAL) {
			t.Fatalf("second connect during the hold: %v, want EALREADY", err)
		}
	}
}

// failedWith checks what the program sees after the failure.
func failedWith(t *testing.T, fd int, want syscall.Errno, wait time.Duration) int16 {
	t.Helper()
	rev := pollOut(t, fd, wait)
	if rev&unix.POLLOUT == 0 || rev&unix.POLLERR == 0 {
		t.Fatalf("poll after Fail: revents %#x, want POLLOUT|POLLERR", rev)
	}
	got, err := emulate.SocketError(fd)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("SO_ERROR = %v, want %v", got, want)
	}
	if _, err := unix.Getpeername(fd); err != unix.ENOTCONN {
		t.Fatalf("getpeername after the failure: %v, want ENOTCONN", err)
	}
	return rev
}

func errnosFor(c tarpitCase) []syscall.Errno {
	list := []syscall.Errno{unix.ECONNREFUSED, unix.ECONNRESET, unix.ETIMEDOUT}
	for e := range icmpFor {
		if _, ok := icmpOf(e, c.domain == unix.AF_INET || c.mapped); ok {
			list = append(list, e)
		}
	}
	return list
}

func TestTarpitFail(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	for _, c := range tarpitCases {
		for _, errno := range errnosFor(c) {
			t.Run(fmt.Sprintf("%s/%s", c.name, unix.ErrnoName(errno)), func(t *testing.T) {
				fd, h := hold(t, tps, c)
				assertInProgress(t, fd, 100*time.Millisecond)
				start := time.Now()
				if err := h.Fail(errno); err != nil {
					t.Fatalf("Fail(%v): %v", errno, err)
				}
				failedWith(t, fd, errno, 100*time.Millisecond)
				t.Logf("failed %v after %v", errno, time.Since(start))
				if err := h.Fail(errno); !errors.Is(err, ErrNotInProgress) {
					t.Fatalf("second Fail: %v, want ErrNotInProgress", err)
				}
			})
		}
	}
}

// TestTarpitLooksNative compares poll's answer after an injected failure
// with the one after a real refused connect on loopback.
func TestTarpitLooksNative(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	native := nonblockingTCP(t, unix.AF_INET)
	err := unix.Connect(native, closedLoopbackPort(t))
	if err != unix.EINPROGRESS && err != unix.ECONNREFUSED {
		t.Fatalf("native connect: %v", err)
	}
	want := failedWith(t, native, unix.ECONNREFUSED, time.Second)
	nativeLocal, _ := unix.Getsockname(native)
	for _, errno := range []syscall.Errno{unix.ECONNREFUSED, unix.ECONNRESET, unix.ETIMEDOUT, unix.EHOSTUNREACH} {
		fd, h := hold(t, tps, tarpitCases[0])
		if err := h.Fail(errno); err != nil {
			t.Fatal(err)
		}
		if got := failedWith(t, fd, errno, time.Second); got != want {
			t.Errorf("%v: revents %#x, native %#x", errno, got, want)
		}
		local, _ := unix.Getsockname(fd)
		t.Logf("%v: getsockname after failure %+v (native refused: %+v)", errno, local, nativeLocal)
	}
}

// queuedError reports what the socket's error queue holds: nothing
// (EAGAIN), or the errno an ICMP error left there.
func queuedError(t *testing.T, fd int) error {
	t.Helper()
	buf, oob := make([]byte, 512), make([]byte, 512)
	_, _, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if err == nil {
		return errors.New("a queued error")
	}
	if err == unix.EAGAIN {
		return nil
	}
	return err
}

// TestTarpitRefusalQueuesNothing: a refusal leaves the error queue empty,
// as a native one does (a closed port's reset queues nothing). An ICMP port
// unreachable would not, over IPv4: tcp_v4_err queues it in SYN_SENT even
// without IP_RECVERR (Linux 6.18), which also wakes a poller before
// SO_ERROR is set, so that it sees POLLERR alone and SO_ERROR 0.
func TestTarpitRefusalQueuesNothing(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	native := nonblockingTCP(t, unix.AF_INET)
	if err := unix.Connect(native, closedLoopbackPort(t)); err != unix.EINPROGRESS && err != unix.ECONNREFUSED {
		t.Fatalf("native connect: %v", err)
	}
	failedWith(t, native, unix.ECONNREFUSED, time.Second)
	if err := queuedError(t, native); err != nil {
		t.Fatalf("native refusal: error queue: %v, want empty", err)
	}
	for _, c := range tarpitCases {
		t.Run(c.name, func(t *testing.T) {
			fd, h := hold(t, tps, c)
			if err := h.Fail(unix.ECONNREFUSED); err != nil {
				t.Fatal(err)
			}
			failedWith(t, fd, unix.ECONNREFUSED, time.Second)
			if err := queuedError(t, fd); err != nil {
				t.Errorf("error queue after the refusal: %v, want empty as natively", err)
			}
		})
	}
}

func TestTarpitBlackhole(t *testing.T) {
	requireRoot(t)
	checkBlackhole(t, newSet(t), 2*time.Second)
}

// checkBlackhole: a connect held and never failed stays in progress, in
// SYN_SENT, for d at least.
func checkBlackhole(t *testing.T, tps *Set, d time.Duration) {
	for _, c := range tarpitCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fd, h := hold(t, tps, c)
			h.Close()
			assertInProgress(t, fd, d)
			if st, err := emulate.TCPStateOf(fd); err != nil || st != emulate.TCPSynSent {
				t.Fatalf("state %d (%v), want SYN_SENT", st, err)
			}
		})
	}
}

// TestTarpitTimeoutAt: the kernel's own timer fails the connect at the
// deadline, well past the first SYN retransmission.
func TestTarpitTimeoutAt(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	for _, c := range tarpitCases[:2] {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fd := nonblockingTCP(t, c.domain)
			// The program's own TCP_USER_TIMEOUT comes back afterwards.
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 60000); err != nil {
				t.Fatal(err)
			}
			h := holdFD(t, tps, fd, c)
			const d = 1500 * time.Millisecond
			deadline := h.sentAt.Add(d)
			if err := h.TimeoutAt(deadline); err != nil {
				t.Fatal(err)
			}
			assertInProgress(t, fd, d-100*time.Millisecond)
			failedWith(t, fd, unix.ETIMEDOUT, 300*time.Millisecond)
			late := time.Since(deadline)
			t.Logf("ETIMEDOUT %v after the deadline", late)
			if late > 50*time.Millisecond {
				t.Errorf("ETIMEDOUT %v late", late)
			}
			if err := h.Fail(unix.ETIMEDOUT); err != nil {
				t.Fatal(err)
			}
			if v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); v != 60000 {
				t.Errorf("TCP_USER_TIMEOUT after the failure = %d, want the program's 60000", v)
			}
		})
	}
}

// TestTarpitLateTimeout: Fail(ETIMEDOUT) without TimeoutAt, after the first
// retransmission, lands at the kernel's next retransmission timer.
func TestTarpitLateTimeout(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	fd, h := hold(t, tps, tarpitCases[0])
	time.Sleep(1200 * time.Millisecond)
	start := time.Now()
	if err := h.Fail(unix.ETIMEDOUT); err != nil {
		t.Fatal(err)
	}
	failedWith(t, fd, unix.ETIMEDOUT, 100*time.Millisecond)
	t.Logf("ETIMEDOUT %v after Fail (%v after the SYN)", time.Since(start), time.Since(h.sentAt))
	if v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); v != 0 {
		t.Errorf("TCP_USER_TIMEOUT after the failure = %d, want 0", v)
	}
}

// TestTarpitDelayAccuracy: Fail at a delay, as the supervisor will, and
// measure when the program's poll wakes up.
func TestTarpitDelayAccuracy(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	for _, errno := range []syscall.Errno{unix.ECONNREFUSED, unix.ECONNRESET, unix.ETIMEDOUT} {
		fd, h := hold(t, tps, tarpitCases[0])
		const d = 300 * time.Millisecond
		time.AfterFunc(time.Until(h.sentAt.Add(d)), func() {
			if err := h.Fail(errno); err != nil {
				t.Error(err)
			}
		})
		failedWith(t, fd, errno, time.Second)
		t.Logf("%v: poll woke %v after the SYN (delay %v)", errno, time.Since(h.sentAt), d)
		if late := time.Since(h.sentAt) - d; late > 50*time.Millisecond {
			t.Errorf("%v: %v late", errno, late)
		}
	}
}

// TestTarpitBoundSocket: a program that bound its socket to a local,
// non-loopback address (or to a port on the wildcard address) before
// connecting keeps that address; the SYN and the ICMP still stay on lo.
func TestTarpitBoundSocket(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	ifaces, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, a := range ifaces {
		p, err := netip.ParsePrefix(a.String())
		if err == nil && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			addrs = append(addrs, p.Addr())
		}
	}
	addrs = append(addrs, netip.IPv4Unspecified(), netip.IPv6Unspecified())
	for _, a := range addrs {
		for _, errno := range []syscall.Errno{unix.ECONNREFUSED, unix.ETIMEDOUT, unix.ECONNRESET} {
			t.Run(a.String()+"/"+unix.ErrnoName(errno), func(t *testing.T) {
				c := tarpitCases[1]
				var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: a.As16()}
				if a.Is4() {
					c = tarpitCases[0]
					sa = &unix.SockaddrInet4{Addr: a.As4()}
				}
				fd := nonblockingTCP(t, c.domain)
				if err := unix.Bind(fd, sa); err != nil {
					t.Fatal(err)
				}
				before, _ := unix.Getsockname(fd)
				h := holdFD(t, tps, fd, c)
				assertInProgress(t, fd, 50*time.Millisecond)
				during, _ := unix.Getsockname(fd)
				if err := h.Fail(errno); err != nil {
					t.Fatal(err)
				}
				failedWith(t, fd, errno, 100*time.Millisecond)
				after, _ := unix.Getsockname(fd)
				t.Logf("getsockname bound %v, held %v, failed %v", sockAddrOf(before), sockAddrOf(during), sockAddrOf(after))
				if !a.IsUnspecified() && sockAddrOf(during).ip != a {
					t.Errorf("local address during the hold %v, want the bound %v", sockAddrOf(during).ip, a)
				}
			})
		}
	}
}

// TestTarpitEpoll: an edge-triggered epoll, as Go's netpoller uses, reports
// nothing during the hold and one writable-with-error event on Fail.
func TestTarpitEpoll(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	fd := nonblockingTCP(t, unix.AF_INET)
	h := holdFD(t, tps, fd, tarpitCases[0])
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		t.Fatal(err)
	}
	evs := make([]unix.EpollEvent, 4)
	if n, _ := unix.EpollWait(ep, evs, 300); n != 0 {
		t.Fatalf("epoll during the hold: %d events (%#x)", n, evs[0].Events)
	}
	if err := h.Fail(unix.ECONNREFUSED); err != nil {
		t.Fatal(err)
	}
	n, _ := unix.EpollWait(ep, evs, 100)
	if n != 1 || evs[0].Events&(unix.EPOLLOUT|unix.EPOLLERR) != unix.EPOLLOUT|unix.EPOLLERR {
		t.Fatalf("epoll after Fail: %d events (%#x), want EPOLLOUT|EPOLLERR", n, evs[0].Events)
	}
	if e, _ := emulate.SocketError(fd); e != unix.ECONNREFUSED {
		t.Fatalf("SO_ERROR %v", e)
	}
}

func TestTarpitNotAsync(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	fd, h := hold(t, tps, tarpitCases[0])
	if failsAsyncPrivileged(unix.AF_INET, false, unix.EADDRNOTAVAIL) {
		t.Error("FailsAsync(EADDRNOTAVAIL) = true")
	}
	if err := h.Fail(unix.EADDRNOTAVAIL); !errors.Is(err, ErrNotAsync) {
		t.Fatalf("Fail(EADDRNOTAVAIL): %v, want ErrNotAsync", err)
	}
	assertInProgress(t, fd, 50*time.Millisecond)
}

func TestTarpitRefusesBlocking(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := tps.Hold(fd, unix.AF_INET, false); err == nil {
		t.Fatal("Hold on a blocking socket succeeded")
	}
}

// inNewNetns runs fn on a locked thread in a fresh network namespace; the
// thread is thrown away afterwards.
func inNewNetns(t *testing.T, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		done <- fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func setLoopbackUp(up bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	flags := ifr.Uint16() &^ unix.IFF_UP
	if up {
		flags |= unix.IFF_UP
	}
	ifr.SetUint16(flags)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func TestTarpitOtherNetns(t *testing.T) {
	requireRoot(t)
	tps := newSet(t)
	var down, fds [3]int
	inNewNetns(t, func() error {
		var err error
		for i, c := range tarpitCases {
			if down[i], err = unix.Socket(c.domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
		}
		if err := setLoopbackUp(true); err != nil {
			return fmt.Errorf("loopback up: %w", err)
		}
		for i, c := range tarpitCases {
			if fds[i], err = unix.Socket(c.domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range fds {
		t.Cleanup(func() { unix.Close(fds[i]); unix.Close(down[i]) })
	}
	for i, c := range tarpitCases {
		t.Run(c.name, func(t *testing.T) {
			h := holdFD(t, tps, fds[i], c)
			assertInProgress(t, fds[i], 100*time.Millisecond)
			if err := h.Fail(unix.ECONNREFUSED); err != nil {
				t.Fatal(err)
			}
			failedWith(t, fds[i], unix.ECONNREFUSED, 100*time.Millisecond)
		})
	}
	tps.mu.Lock()
	n := len(tps.byNS)
	tps.mu.Unlock()
	if n != 1 {
		t.Errorf("%d tarpits, want 1 (the other namespace only)", n)
	}

	// A second namespace, its loopback down: Hold says so.
	inNewNetns(t, func() error {
		var err error
		down[0], err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if _, err := tps.Hold(down[0], unix.AF_INET, false); !errors.Is(err, ErrLoopbackDown) {
		t.Fatalf("Hold with loopback down: %v, want ErrLoopbackDown", err)
	}
	if st, _ := emulate.TCPStateOf(down[0]); st != emulate.TCPClose {
		t.Errorf("socket state %d after a refused Hold, want untouched", st)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// checkNoFDLeak returns how many fds are open now and checks at the end
// of the test that as many are. Call it first, so that its cleanup runs
// after the others have closed the test's sockets and dups.
func checkNoFDLeak(t *testing.T) int {
	t.Helper()
	before := countFDs(t)
	t.Cleanup(func() {
		if after := countFDs(t); after != before {
			t.Errorf("fds: %d before, %d after", before, after)
		}
	})
	return before
}

func TestTarpitNoFDLeak(t *testing.T) {
	requireRoot(t)
	before := checkNoFDLeak(t)
	tps, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		for _, c := range tarpitCases {
			fd := nonblockingTCP(t, c.domain)
			h := holdFD(t, tps, fd, c)
			if i == 1 {
				h.Fail(unix.ECONNREFUSED)
			}
			h.Close()
		}
	}
	// Each family of a tarpit holds a listener, two raw sockets and the
	// shared SYN capture, and a closed port; the held connects hold nothing
	// of their own.
	if got := countFDs(t) - before - 9*2; got != 10 {
		t.Errorf("%d fds open while holding, want 10 (2 families × listener, 2 raw, capture, closed port)", got)
	}
	tps.Close()
}
