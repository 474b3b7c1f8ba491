package emulate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// A UNIX socket file can have other names than the one it was bound at: a
// hard link in another directory (the target needs only to own the socket
// file, or CAP_FOWNER), or a rename. A path rule must hold whatever name
// the target uses, so when the socket file has more than one link, the
// connect is decided on the name the listening socket was bound at too,
// which the kernel keeps (sock_diag's UNIX_DIAG_NAME, matched by the
// file's inode through UNIX_DIAG_VFS).

// unix_diag constants (include/uapi/linux/unix_diag.h).
const (
	udiagShowName = 0x1 // UDIAG_SHOW_NAME
	udiagShowVFS  = 0x2 // UDIAG_SHOW_VFS
	unixDiagName  = 0   // UNIX_DIAG_NAME
	unixDiagVFS   = 1   // UNIX_DIAG_VFS

	unixDiagReqLen = 24 // struct unix_diag_req
	unixDiagMsgLen = 16 // struct unix_diag_msg
	// sockDiagReplySize is what one datagram of the dump is read into:
	// netlink sizes dump datagrams to the reader's buffer, up to 32 KiB
	// (netlink_recvmsg's max_recvmsg_len), so none is ever cut.
	sockDiagReplySize = 32 << 10
)

// errNoBoundName: no socket of this network namespace is bound at the
// inode (the listener is gone, or lives in another network namespace).
var errNoBoundName = errors.New("no UNIX socket bound at this inode in the supervisor's network namespace")

// boundName returns the name the socket bound at the file (dev, ino) was
// bound with, as its binder gave it (possibly relative to the binder's
// working directory). It dumps the UNIX sockets of the calling thread's
// network namespace.
func boundName(dev, ino uint64) (string, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return "", fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	req := make([]byte, unix.NLMSG_HDRLEN+unixDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], 0xffffffff) // every state
	ne.PutUint32(r[12:], udiagShowName|udiagShowVFS)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return "", fmt.Errorf("sock_diag request: %w", err)
	}
	// The kernel's dev_t in UNIX_DIAG_VFS is MAJOR<<20 | MINOR.
	kdev := uint32(unix.Major(dev))<<20 | uint32(unix.Minor(dev))
	buf := make([]byte, sockDiagReplySize)
	found, name := false, ""
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return "", fmt.Errorf("sock_diag reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return "", fmt.Errorf("sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if !found {
					return "", errNoBoundName
				}
				return name, nil
			case unix.NLMSG_ERROR:
				return "", fmt.Errorf("sock_diag: error reply")
			}
			if found || len(m.Data) < unixDiagMsgLen {
				continue
			}
			var vfsOK bool
			var sockName string
			attrs := m.Data[unixDiagMsgLen:]
			for len(attrs) >= unix.SizeofRtAttr {
				l := int(ne.Uint16(attrs[0:]))
				typ := ne.Uint16(attrs[2:])
				if l < unix.SizeofRtAttr || l > len(attrs) {
					break
				}
				val := attrs[unix.SizeofRtAttr:l]
				switch typ {
				case unixDiagVFS:
					// udiag_vfs_ino is 32 bits wide: on a filesystem
					// with 64-bit inode numbers two sockets could match;
					// the first is taken (at worst a wrong refusal or a
					// name chosen by whoever controls inode numbers).
					vfsOK = len(val) >= 8 && ne.Uint32(val[0:]) == uint32(ino) && ne.Uint32(val[4:]) == kdev
				case unixDiagName:
					// The pathname as bound, with its NUL.
					if i := bytes.IndexByte(val, 0); i >= 0 {
						val = val[:i]
					}
					sockName = string(val)
				}
				attrs = attrs[min(rtaAlign(l), len(attrs)):]
			}
			if vfsOK {
				found, name = true, sockName
			}
		}
	}
}

func rtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// checkBoundName decides a UNIX socket file that has other names (more
// than one link) on the name its socket was bound at too: decide has
// allowed the canonical name already; both must be allowed. A socket whose
// bound name cannot be read here (relative to its binder's working
// directory, or bound in another network namespace) is refused: a path
// rule cannot be checked on it.
func checkBoundName(target int, canonical string, decide UnixDecider) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(target, &st); err != nil {
		return syscall.EACCES
	}
	if st.Nlink <= 1 {
		return 0
	}
	name, err := boundName(st.Dev, st.Ino)
	if errors.Is(err, errNoBoundName) {
		// No socket listens there: the kernel refuses the connect.
		return 0
	}
	if err != nil || len(name) == 0 || name[0] != '/' {
		return syscall.EACCES
	}
	if name == canonical {
		return 0
	}
	return decide(name)
}
