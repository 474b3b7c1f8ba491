package tarpit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// icmpCode is an ICMP message (type, code) that makes the kernel fail a
// connect in SYN_SENT; type 0 stands for none (no errno below comes from
// an ICMPv4 echo reply or the reserved ICMPv6 type 0).
type icmpCode struct{ typ, code byte }

// icmpFor is what the kernel turns into each errno for a connect in
// SYN_SENT: ICMPv4 as tcp_v4_err maps it (type 3, destination unreachable,
// through icmp_err_convert; type 12, parameter problem), ICMPv6 through
// icmpv6_err_convert (type 1, destination unreachable; type 4, parameter
// problem). ECONNREFUSED is not here: a refusal is a reset (Fail).
var icmpFor = map[syscall.Errno]struct{ v4, v6 icmpCode }{
	unix.ENETUNREACH:  {v4: icmpCode{3, 0}, v6: icmpCode{1, 0}},
	unix.EHOSTUNREACH: {v4: icmpCode{3, 1}, v6: icmpCode{1, 3}},
	unix.ENOPROTOOPT:  {v4: icmpCode{3, 2}},
	unix.EOPNOTSUPP:   {v4: icmpCode{3, 5}},
	unix.EHOSTDOWN:    {v4: icmpCode{3, 7}},
	unix.ENONET:       {v4: icmpCode{3, 8}},
	unix.EPROTO:       {v4: icmpCode{12, 0}, v6: icmpCode{4, 0}},
	unix.EACCES:       {v6: icmpCode{1, 1}},
}

// icmpOf returns the ICMP message that delivers errno to a connect over
// IPv4 (v4) or IPv6.
func icmpOf(errno syscall.Errno, v4 bool) (icmpCode, bool) {
	c := icmpFor[errno].v6
	if v4 {
		c = icmpFor[errno].v4
	}
	return c, c.typ != 0
}

// failsAsyncPrivileged reports whether a privileged tarpit can deliver
// errno to a connect held on a socket of this family (AF_INET, or AF_INET6
// with mappedV4 for an IPv6 socket connecting to an IPv4-mapped address,
// which runs IPv4 underneath).
func failsAsyncPrivileged(family int, mappedV4 bool, errno syscall.Errno) bool {
	switch errno {
	case unix.ETIMEDOUT, unix.ECONNRESET, unix.ECONNREFUSED:
		return true
	}
	_, ok := icmpOf(errno, family == unix.AF_INET || mappedV4)
	return ok
}

// FailsAsync reports whether HeldConnect.Fail can deliver errno to a
// connect held by this set: ECONNREFUSED, ETIMEDOUT and ECONNRESET, and
// when privileged every errno with an ICMP message too. family and
// mappedV4 are Hold's.
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

// Limits says how a fault on a nonblocking TCP connect held by this set
// differs from the network failure it stands for, or "" when it does not.
// errno 0 is a blackhole; wait is its timeout (0: none), or the fault's
// delay.
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
	for i := 1; i < maxRetransmits && at < d; i++ {
		at += rto
		if i > linear {
			rto *= 2
		}
	}
	return at
}
