package difffuzz

import (
	"regexp"
	"slices"
)

// A diffEntry explains one class of differences between a native and a
// wrapped outcome. A difference belongs to the first entry whose every
// given pattern matches: desc against the call's description, native and
// wrapped against the two outcomes (result, errno, socket state, receipt).
type diffEntry struct {
	name, reason string
	modes        []string // the modes it applies to; nil: all
	desc         *regexp.Regexp
	native       *regexp.Regexp
	wrapped      *regexp.Regexp
}

func (e *diffEntry) matches(d diff) bool {
	return (e.modes == nil || slices.Contains(e.modes, d.mode)) &&
		(e.desc == nil || e.desc.MatchString(d.desc)) &&
		(e.native == nil || e.native.MatchString(d.native)) &&
		(e.wrapped == nil || e.wrapped.MatchString(d.wrapped))
}

var re = regexp.MustCompile

// Patterns over the program's descriptions (cprog/fuzz.c prints them).
const (
	// name is where a call's destination is described: after the
	// sendto length, or at the start of a message.
	name = `(: (len\S+ )?(flagshi )?|\{ )`
	// foreignName is a destination of another family than AF_UNIX.
	foreignName = name + `(u4|t4|closed4|lo2:u4|any4:u4|denied|port0|u6|t6|closed6|mapped:u4|mapped:t4|any6:u6|u6scope|unspec|netlink|packet|vsock|fam\d+:\S+|garbage(0|3|77|200|65534))\b`
	// unixName is an AF_UNIX destination.
	unixName = name + `(path:\S+|abspath:d|abstract\S*|unnamed|garbage1)\b`
	// errs are the errnos of the kernel's checks of socket state,
	// family, length and memory.
	errs    = `(EFAULT|EBADF|EPERM|EINVAL|ENOBUFS|EMSGSIZE|EISCONN|EPIPE|ENOTCONN|EDESTADDRREQ|EAFNOSUPPORT|EOPNOTSUPP|ENOTSOCK|ENOENT|ENETUNREACH|ECONNREFUSED|EACCES)`
	success = `^\d+ 0 `
)

// inherentDiffs are differences emulation cannot remove.
var inherentDiffs = []diffEntry{
	{name: "policy-denies", modes: []string{"emulated"},
		reason: "the emulating policy denies 127.0.0.99:9 with EACCES, which the program also fuzzes: where the kernel would have reached it (connected, sent, or been refused), the policy answers instead",
		desc:   re(` denied\b`), native: re(`^(\d+ 0|-1 (ECONNREFUSED|EINPROGRESS)) `), wrapped: re(`^-1 EACCES `)},
}

// knownDiffs are fidelity gaps issue 11 tracks (point 4 lists most of
// them); each is to be fixed and its entry removed. DIFFFUZZ_STRICT=1
// fails on any of them.
var knownDiffs = []diffEntry{
	{name: "passcred-pid",
		reason: "a UNIX receiver with SO_PASSCRED sees the supervisor's pid, not the sender's, on emulated sends",
		native: re(`cred=\d+:self`), wrapped: re(`cred=\d+:other`)},
	{name: "unix-foreign-name",
		reason: "a name of another family on a UNIX datagram or seqpacket socket is resolved as a path (natively EINVAL for datagrams; seqpacket ignores the name and sends to its peer)",
		desc:   re(`^\d+ \w+ sig\d (udg|usq)\w*.*` + foreignName)},
	{name: "seqpacket-name-ignored",
		reason: "a SEQPACKET socket ignores the name natively (sends to its peer, or ENOTCONN/EPIPE); wrapped the name is resolved and sent to",
		desc:   re(`^\d+ \w+ sig\d usq\w*.*` + unixName)},
	{name: "default-foreign-family-eperm", modes: []string{"default"},
		reason: "under the embedded default a send names a family the socket cannot use: the policy denies it with EPERM where the kernel says EINVAL or EAFNOSUPPORT (connect leaves those to the kernel)",
		native: re(`^-1 (EINVAL|EAFNOSUPPORT) `), wrapped: re(`^-1 EPERM `)},
	{name: "sigpipe-eintr",
		reason: "EPIPE with a SIGPIPE handler installed without SA_RESTART: the supervisor's SIGPIPE interrupts the target's wait for the answer, which turns into EINTR (also where the kernel would have failed first with another errno, EFAULT, and raised nothing)",
		desc:   re(` sig2 `), native: re(`^-1 `), wrapped: re(`^-1 EINTR .*pipe=1 `)},
	{name: "sigpipe-repeated",
		reason: "EPIPE with an SA_RESTART SIGPIPE handler: the supervisor's SIGPIPE interrupts the wait, the call restarts and is emulated again, one SIGPIPE each time (up to 64 seen)",
		desc:   re(` sig1 `), native: re(`^-1 EPIPE .*pipe=1 `), wrapped: re(`^-1 EPIPE .*pipe=([2-9]|\d\d+) `)},
	{name: "seqpacket-sigpipe",
		reason: "EPIPE on a UNIX SEQPACKET socket raises no SIGPIPE natively; wrapped the supervisor raises one",
		desc:   re(` usq\w* `), native: re(`^-1 EPIPE .*pipe=0 `), wrapped: re(`^-1 EPIPE .*pipe=1 `)},
	{name: "scm-credentials-eperm",
		reason: "SCM_CREDENTIALS is always refused with EPERM; natively a process may send its own pid, uid and gid (root any), and inet sockets ignore it",
		desc:   re(` cred-`), wrapped: re(`^-1 EPERM `)},
	{name: "flags-bit31",
		reason: "bit 31 (MSG_CMSG_COMPAT) in flags: sendto ignores it natively, EINVAL wrapped because the call is re-issued as sendmsg; sendmmsg natively EINVAL even with vlen 0, wrapped 0",
		desc:   re(`flags=0x[89a-f]\w{7}$`), native: re(`^(\d+ 0|-1 \w+) `), wrapped: re(`^(-1 EINVAL|0 0) `)},
	{name: "scm-credentials-mmsg",
		reason: "as scm-credentials-eperm, in a later message of a sendmmsg: it stops there with fewer messages sent",
		desc:   re(`^\d+ sendmmsg .* cred-`), native: re(success), wrapped: re(success)},
	{name: "fastopen-blocking",
		reason: "sendto(MSG_FASTOPEN) on a blocking TCP socket: natively it connects, waits and sends (ECONNREFUSED to a closed port), wrapped EINPROGRESS and the data is never sent",
		desc:   re(`^\d+ send\w+ sig\d tcp[46] .*flags=0x\w*[2367abef]\w{7}$`), wrapped: re(`^-1 EINPROGRESS `)},
	{name: "sendto-addrlen0",
		reason: "sendto with an address and addrlen 0: natively EINVAL, wrapped sent to the socket's peer",
		desc:   re(`^\d+ sendto .*/len0\b`), native: re(`^-1 EINVAL `), wrapped: re(success)},
	{name: "control-over-64k",
		reason: "control buffers above 64 KiB: the kernel takes up to optmem_max (128 KiB here), wrapped ENOBUFS",
		desc:   re(` big\d+`), native: re(success), wrapped: re(`^-1 ENOBUFS `)},
	{name: "rights-on-inet",
		reason: "SCM_RIGHTS on an inet socket: the kernel ignores it, wrapped the descriptors are translated first, so an invalid one gives EBADF (and 254 of them EPERM)",
		desc:   re(`^\d+ \w+ sig\d (udp|tcp)\w* .* rights\d+`), native: re(success), wrapped: re(`^-1 (EBADF|EPERM|EINVAL) `)},
	{name: "copy-fault-partial",
		reason: "a readable part then an unreadable one: natively a stream sends what it could read (and a datagram's kernel copy may succeed where the supervisor's read faults), wrapped EFAULT and nothing sent",
		native: re(success), wrapped: re(`^-1 EFAULT `)},
	{name: "copy-fault-missed",
		reason: "an absurd iovec length after a valid one, or a kernel address with length 0: natively EFAULT, wrapped a (partial) send",
		native: re(`^-1 EFAULT `), wrapped: re(success)},
	{name: "error-order",
		reason: "errors in another order than the kernel's: the message is copied, its fds translated and its destination decided before the kernel would check the socket's state, family and length (EMSGSIZE, EISCONN, EPIPE, ENOTCONN, EDESTADDRREQ, EAFNOSUPPORT come out as EFAULT, EBADF, EPERM, ENOENT, or the reverse)",
		native: re(`^-1 ` + errs + ` `), wrapped: re(`^-1 ` + errs + ` `)},
	{name: "stream-partial",
		reason: "blocking stream sends return the partial count of a nonblocking attempt, and every send is capped at 1 MiB where the kernel takes more",
		desc:   re(` (tcp\w*|ust\w*) `), native: re(success), wrapped: re(success)},
}

// classify returns the entry that explains d, and whether it is a known
// gap (rather than inherent); nil when nothing explains it.
func classify(d diff) (*diffEntry, bool) {
	for i := range inherentDiffs {
		if inherentDiffs[i].matches(d) {
			return &inherentDiffs[i], false
		}
	}
	for i := range knownDiffs {
		if knownDiffs[i].matches(d) {
			return &knownDiffs[i], true
		}
	}
	return nil, false
}
