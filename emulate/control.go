package emulate

import (
	"encoding/binary"
	"syscall"

	"golang.org/x/sys/unix"
)

// Control messages are sent as the target wrote them, with three
// exceptions that come from the supervisor, not the target, making the
// call: descriptor numbers in SCM_RIGHTS name the target's files and are
// replaced by duplicates; the kernel checks SCM_CREDENTIALS and some IP
// options against the sender's own privileges, so they are checked here
// against the target's; and control messages that send a packet on to
// other hosts than the one decided (source routing) are refused.

const cmsghdrSize = 16 // sizeof(struct cmsghdr) on 64-bit

// cmsg is one control message of a buffer, as the kernel walks them.
type cmsg struct {
	level, typ int32
	data       []byte
	malformed  bool // CMSG_OK fails: the kernel stops with EINVAL here
}

// walkControl calls fn for each control message in the order of the
// kernel's for_each_cmsghdr, and for a malformed one (CMSG_OK) last. end is
// where the kernel would look for the next header (aligned, so possibly
// past the buffer): bytes from there on are too few for one and ignored.
func walkControl(ctl []byte, fn func(cm *cmsg) syscall.Errno) (errno syscall.Errno, end int) {
	le := binary.NativeEndian
	off := 0
	for ; off+cmsghdrSize <= len(ctl); off += int((le.Uint64(ctl[off:]) + 7) &^ 7) { // CMSG_NXTHDR
		clen := le.Uint64(ctl[off:])
		cm := &cmsg{level: int32(le.Uint32(ctl[off+8:])), typ: int32(le.Uint32(ctl[off+12:]))}
		if clen < cmsghdrSize || clen > uint64(len(ctl)-off) {
			cm.malformed = true
			return fn(cm), off
		}
		cm.data = ctl[off+cmsghdrSize : off+int(clen)]
		if e := fn(cm); e != 0 {
			return e, off
		}
	}
	return 0, off
}

// Control is what the control messages of a send ask of the supervisor.
type Control struct {
	// Reroute names a control message that would send the packet on to
	// hosts the policy never decided (source routing); the send is refused.
	Reroute string
	// NeedsNetRaw / NeedsNetRawOrAdmin: the kernel would check the
	// sender's CAP_NET_RAW (or CAP_NET_ADMIN) for one of them.
	NeedsNetRaw, NeedsNetRawOrAdmin bool
}

// Level and type numbers of the control messages looked at here.
const (
	solIP            = 0
	solIPv6          = 41
	ipRetopts        = 7  // IP_RETOPTS: IP options, source routes among them
	ipv6_2292Hopopts = 3  // IPV6_2292HOPOPTS
	ipv6_2292Dstopts = 4  // IPV6_2292DSTOPTS
	ipv6_2292Rthdr   = 5  // IPV6_2292RTHDR
	ipv6Hopopts      = 54 // IPV6_HOPOPTS
	ipv6Rthdrdstopts = 55 // IPV6_RTHDRDSTOPTS
	ipv6Rthdr        = 57 // IPV6_RTHDR
	ipv6Dstopts      = 59 // IPV6_DSTOPTS
	soPriority       = 12 // SO_PRIORITY
	soMark           = 36 // SO_MARK
)

// maxUnprivPriority is TC_PRIO_INTERACTIVE: SO_PRIORITY values up to it
// need no privilege (sk_set_prio_allowed).
const maxUnprivPriority = 6

// InspectControl looks at the control messages of a send on a non-UNIX
// socket for what the kernel would judge with the sender's privileges, or
// that reroutes the packet. A malformed list is the kernel's to refuse.
func (m *Message) InspectControl() Control {
	var c Control
	walkControl(m.control, func(cm *cmsg) syscall.Errno {
		if cm.malformed {
			return syscall.EINVAL
		}
		switch {
		case cm.level == solIP && cm.typ == ipRetopts:
			c.Reroute = "IP_RETOPTS"
		case cm.level == solIPv6 && (cm.typ == ipv6Rthdr || cm.typ == ipv6_2292Rthdr):
			c.Reroute = "IPV6_RTHDR"
		case cm.level == solIPv6 && (cm.typ == ipv6Hopopts || cm.typ == ipv6_2292Hopopts ||
			cm.typ == ipv6Dstopts || cm.typ == ipv6_2292Dstopts || cm.typ == ipv6Rthdrdstopts):
			c.NeedsNetRaw = true
		case cm.level == unix.SOL_SOCKET && cm.typ == soMark:
			c.NeedsNetRawOrAdmin = true
		case cm.level == unix.SOL_SOCKET && cm.typ == soPriority && len(cm.data) >= 4 &&
			binary.NativeEndian.Uint32(cm.data) > maxUnprivPriority:
			c.NeedsNetRawOrAdmin = true
		}
		return 0
	})
	return c
}

// Allowed reports whether a sender may send c's control messages.
func (c Control) Allowed(s *Sender) bool {
	if c.NeedsNetRaw && !s.Has(capNetRaw) {
		return false
	}
	return !c.NeedsNetRawOrAdmin || s.Has(capNetRaw) || s.Has(capNetAdmin)
}

// CredsChecker judges an SCM_CREDENTIALS claim as scm_check_creds would for
// the target, returning the errno the target's own send would get.
type CredsChecker func(pid, uid, gid uint32) syscall.Errno

// PrepareSCM readies the control messages of a send on a socket whose
// kernel side reads SOL_SOCKET messages with scm_send (AF_UNIX; AF_NETLINK,
// which refuses SCM_RIGHTS). It fails as __scm_send would, in its order
// (EINVAL for a malformed or unknown message, EBADF at the first bad
// descriptor, the checker's errno for credentials), and replaces each
// descriptor of SCM_RIGHTS by a duplicate the supervisor owns.
func (m *Message) PrepareSCM(pidfd int, rightsAllowed bool, check CredsChecker) (syscall.Errno, error) {
	le := binary.NativeEndian
	count := 0
	var failure error
	errno, _ := walkControl(m.control, func(cm *cmsg) syscall.Errno {
		if cm.malformed {
			return syscall.EINVAL
		}
		if cm.level != unix.SOL_SOCKET {
			return 0
		}
		switch cm.typ {
		case unix.SCM_RIGHTS:
			if !rightsAllowed {
				return syscall.EINVAL
			}
			num := len(cm.data) / 4 // a partial int is ignored (scm_fp_copy)
			if num == 0 {
				return 0
			}
			if num > scmMaxFD || count+num > scmMaxFD {
				return syscall.EINVAL
			}
			for i := 0; i < num; i++ {
				theirs := int32(le.Uint32(cm.data[4*i:]))
				if theirs < 0 {
					return syscall.EBADF
				}
				dup, errno, err := DupTargetFD(pidfd, uint64(theirs))
				if err != nil {
					failure = err
					return syscall.EPERM
				}
				if errno != 0 {
					return errno
				}
				m.dupFDs = append(m.dupFDs, dup)
				le.PutUint32(cm.data[4*i:], uint32(dup))
			}
			count += num
		case unix.SCM_CREDENTIALS:
			if len(cm.data) != unix.SizeofUcred {
				return syscall.EINVAL
			}
			pid, uid, gid := le.Uint32(cm.data[0:]), le.Uint32(cm.data[4:]), le.Uint32(cm.data[8:])
			if e := check(pid, uid, gid); e != 0 {
				return e
			}
			m.creds = &unix.Ucred{Pid: int32(pid), Uid: uid, Gid: gid}
		default:
			return syscall.EINVAL
		}
		return 0
	})
	return errno, failure
}

// RewriteCredsPid replaces pid by pid2 in SCM_CREDENTIALS messages already
// checked: an unprivileged supervisor may claim only its own pid, so the
// target's own pid is sent as the supervisor's.
func (m *Message) RewriteCredsPid(from, to uint32) {
	le := binary.NativeEndian
	walkControl(m.control, func(cm *cmsg) syscall.Errno {
		if cm.malformed {
			return syscall.EINVAL
		}
		if cm.level == unix.SOL_SOCKET && cm.typ == unix.SCM_CREDENTIALS && len(cm.data) == unix.SizeofUcred &&
			le.Uint32(cm.data) == from {
			le.PutUint32(cm.data, to)
		}
		return 0
	})
	if m.creds != nil && uint32(m.creds.Pid) == from {
		m.creds.Pid = int32(to)
	}
}

// AddCreds gives a UNIX send without SCM_CREDENTIALS of its own the
// target's, as the kernel gives a receiver with SO_PASSCRED the sender's
// (scm_send: tgid, real uid and gid); sent by the supervisor it would
// otherwise carry the supervisor's pid. The message goes where the kernel
// would look for the next header.
func (m *Message) AddCreds(pid, uid, gid uint32) {
	if m.creds != nil || m.ctlBad {
		return
	}
	_, end := walkControl(m.control, func(*cmsg) syscall.Errno { return 0 })
	m.creds = &unix.Ucred{Pid: int32(pid), Uid: uid, Gid: gid}
	b := make([]byte, end, end+unix.CmsgSpace(unix.SizeofUcred))
	copy(b, m.control) // zero padding up to the aligned end
	m.control = append(b, unix.UnixCredentials(m.creds)...)
}

// HasControl reports whether the send carries control messages the
// kernel will read (a buffer too short for one header carries none).
func (m *Message) HasControl() bool { return len(m.control) >= cmsghdrSize }

// CheckCreds is scm_check_creds for the target s: uid and gid must be
// valid; the pid must be the target's own unless it has CAP_SYS_ADMIN, the
// uid one of its real, effective or saved uids unless it has CAP_SETUID,
// the gid likewise with CAP_SETGID; the pid must exist (ESRCH).
func (s *Sender) CheckCreds(pid, uid, gid uint32) syscall.Errno {
	if uid == ^uint32(0) || gid == ^uint32(0) {
		return syscall.EINVAL
	}
	okPid := pid == s.Tgid || s.Has(capSysAdmin)
	okUID := uid == s.Uids[0] || uid == s.Uids[1] || uid == s.Uids[2] || s.Has(capSetuid)
	okGID := gid == s.Gids[0] || gid == s.Gids[1] || gid == s.Gids[2] || s.Has(capSetgid)
	if !okPid || !okUID || !okGID {
		return syscall.EPERM
	}
	if pid != s.Tgid {
		// kill(0) and kill(-n) would name process groups: test those first.
		if int32(pid) <= 0 || unix.Kill(int(pid), 0) == unix.ESRCH {
			return syscall.ESRCH
		}
	}
	return 0
}
