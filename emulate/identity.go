package emulate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Who a target thread is, read from the kernel: for policy matching and
// logs (Process), for the control messages the kernel judges with the
// sender's privileges (Sender), and for the deputy that acts as the target
// (identity, in deputy.go). All of it comes from one parser of
// /proc/TID/status (readStatus), or from a pidfd (ThreadCreds).

// Capabilities the kernel consults about a sender (control messages)
// and that the deputy keeps or drops (linux/capability.h).
const (
	capSetgid   = 6
	capSetuid   = 7
	capNetAdmin = 12
	capNetRaw   = 13
	capSysAdmin = 21
)

// Process describes the process a thread belongs to, for policy matching
// and logs. Reading it costs a few system calls, so callers ask only when a
// rule or a log line needs it.
type Process struct {
	Pid int
	UID uint32
	Exe string
}

// Identify reads tid's thread group id, real uid and executable from /proc.
func Identify(tid int) (Process, error) {
	var p Process
	st, err := readStatus(tid, false)
	if err != nil {
		return p, fmt.Errorf("identify tid %d: %w", tid, err)
	}
	p.Pid, p.UID = int(st.tgid), st.uids[0]
	// A kernel thread or a zombie has no executable; that is not an error.
	var link [unix.PathMax]byte
	if n, err := unix.Readlink("/proc/"+strconv.Itoa(tid)+"/exe", link[:]); err == nil {
		p.Exe = string(link[:n])
	}
	return p, nil
}

// Sender is what the kernel consults about the sending thread when it
// reads control messages.
type Sender struct {
	Tgid       uint32
	Uids, Gids [3]uint32 // real, effective, saved
	CapEff     uint64
}

// Has reports whether the sender holds capability cap.
func (s *Sender) Has(cap int) bool { return s.CapEff&(1<<cap) != 0 }

// ReadSender reads tid's ids and capabilities from its status file in one
// read.
func ReadSender(tid int) (Sender, error) {
	st, err := readStatus(tid, false)
	if err != nil {
		return Sender{}, err
	}
	s := Sender{Tgid: st.tgid, CapEff: st.capEff}
	copy(s.Uids[:], st.uids[:])
	copy(s.Gids[:], st.gids[:])
	return s, nil
}

// ThreadCreds returns the thread group id and the real uid and gid of the
// thread behind pidfd, in one ioctl (PIDFD_GET_INFO, Linux 6.13).
func ThreadCreds(pidfd int) (tgid, uid, gid uint32, err error) {
	const (
		pidfdGetInfo  = 0xC040FF0B // _IOWR(PIDFS_IOCTL_MAGIC, 11, 64 bytes: PIDFD_INFO_SIZE_VER0)
		pidfdInfoPid  = 1 << 0
		pidfdInfoCred = 1 << 1
	)
	var info [64]byte
	le := binary.NativeEndian
	le.PutUint64(info[0:], pidfdInfoPid|pidfdInfoCred)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), pidfdGetInfo, uintptr(unsafe.Pointer(&info[0]))); e != 0 {
		return 0, 0, 0, fmt.Errorf("PIDFD_GET_INFO: %w", e)
	}
	if le.Uint64(info[0:])&(pidfdInfoPid|pidfdInfoCred) != pidfdInfoPid|pidfdInfoCred {
		return 0, 0, 0, fmt.Errorf("PIDFD_GET_INFO: no pid or credentials")
	}
	return le.Uint32(info[20:]), le.Uint32(info[28:]), le.Uint32(info[32:]), nil
}

// identity is what the kernel consults when a thread resolves a pathname and
// connects to a UNIX socket: root, working directory, mount namespace and
// filesystem credentials. SO_PEERCRED also records the effective ids.
type identity struct {
	ruid, euid, suid, fsuid uint32
	rgid, egid, sgid, fsgid uint32
	groups                  []uint32
	capEff                  uint64
}

// targetIdentity reads tid's identity from its status file.
func targetIdentity(tid int) (identity, error) {
	st, err := readStatus(tid, true)
	if err != nil {
		return identity{}, err
	}
	return identity{
		ruid: st.uids[0], euid: st.uids[1], suid: st.uids[2], fsuid: st.uids[3],
		rgid: st.gids[0], egid: st.gids[1], sgid: st.gids[2], fsgid: st.gids[3],
		groups: st.groups, capEff: st.capEff,
	}, nil
}

// selfIdentity is the calling thread's identity, from system calls (much
// cheaper than parsing /proc/thread-self/status).
func selfIdentity() (identity, error) {
	var id identity
	var r, e, s int
	r, e, s = unix.Getresuid()
	id.ruid, id.euid, id.suid = uint32(r), uint32(e), uint32(s)
	r, e, s = unix.Getresgid()
	id.rgid, id.egid, id.sgid = uint32(r), uint32(e), uint32(s)
	// setfsuid/setfsgid with an invalid id change nothing and return the
	// current value.
	fsuid, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	fsgid, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0)
	id.fsuid, id.fsgid = uint32(fsuid), uint32(fsgid)
	groups, err := unix.Getgroups()
	if err != nil {
		return id, fmt.Errorf("getgroups: %w", err)
	}
	for _, g := range groups {
		id.groups = append(id.groups, uint32(g))
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return id, fmt.Errorf("capget: %w", err)
	}
	id.capEff = uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	return id, nil
}

// statusReadSize is the buffer /proc/TID/status is read into. The file is
// about 1.5 KiB, and the kernel writes it whole in one read (it is one
// seq_file show), so one read(2) into this much gets all of it.
const statusReadSize = 8192

// procStatus is what a thread's /proc/TID/status says of its identity.
type procStatus struct {
	tgid       uint32
	uids, gids [4]uint32 // real, effective, saved, filesystem
	groups     []uint32  // supplementary groups, only when asked for
	capEff     uint64
}

// readStatus reads tid's status file with one read(2) into a buffer of its
// own and parses it: this runs for every logged decision and every UNIX
// connect, before the answer. The supplementary groups, which take an
// allocation, are parsed only when withGroups is set.
func readStatus(tid int, withGroups bool) (procStatus, error) {
	path := "/proc/" + strconv.Itoa(tid) + "/status"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return procStatus{}, fmt.Errorf("read %s: %w", path, goneOr(err))
	}
	var buf [statusReadSize]byte
	n, err := unix.Read(fd, buf[:])
	data := buf[:max(n, 0)]
	if err == nil && n == len(buf) {
		// A thread in hundreds of groups has a longer file: the rest
		// follows in further reads of the same seq_file.
		data, err = readRest(fd, append([]byte(nil), data...))
	}
	unix.Close(fd)
	if err != nil {
		return procStatus{}, fmt.Errorf("read %s: %w", path, goneOr(err))
	}
	st, err := parseStatus(data, withGroups)
	if err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// readRest appends what is left to read of fd to data.
func readRest(fd int, data []byte) ([]byte, error) {
	for {
		if len(data) == cap(data) {
			data = append(data, make([]byte, statusReadSize)...)[:len(data)]
		}
		n, err := unix.Read(fd, data[len(data):cap(data)])
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return data, nil
		}
		data = data[:len(data)+n]
	}
}

// parseStatus parses the Tgid, Uid, Gid, CapEff and (withGroups) Groups
// lines of a status file; the first four must be there.
func parseStatus(status []byte, withGroups bool) (procStatus, error) {
	var st procStatus
	const (
		seenTgid = 1 << iota
		seenUid
		seenGid
		seenCapEff
		seenAll = seenTgid | seenUid | seenGid | seenCapEff
	)
	seen := 0
	for line := range bytes.Lines(status) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var err error
		switch string(key) {
		case "Tgid":
			var v [1]uint32
			err = parseIDs(val, v[:])
			st.tgid = v[0]
			seen |= seenTgid
		case "Uid":
			err = parseIDs(val, st.uids[:])
			seen |= seenUid
		case "Gid":
			err = parseIDs(val, st.gids[:])
			seen |= seenGid
		case "CapEff":
			f, rest := nextField(val)
			if f2, _ := nextField(rest); len(f) == 0 || len(f2) != 0 {
				err = fmt.Errorf("want one mask, got %q", bytes.TrimSpace(val))
				break
			}
			st.capEff, err = strconv.ParseUint(string(f), 16, 64)
			seen |= seenCapEff
		case "Groups":
			if !withGroups {
				continue
			}
			for f, rest := nextField(val); len(f) > 0; f, rest = nextField(rest) {
				g, e := strconv.ParseUint(string(f), 10, 32)
				if e != nil {
					err = e
					break
				}
				st.groups = append(st.groups, uint32(g))
			}
		default:
			continue
		}
		if err != nil {
			return st, fmt.Errorf("%s: %w", key, err)
		}
	}
	if seen != seenAll {
		return st, fmt.Errorf("missing Tgid, Uid, Gid or CapEff")
	}
	return st, nil
}

// parseIDs parses exactly len(dst) decimal ids from a status line's value.
func parseIDs(val []byte, dst []uint32) error {
	rest := val
	for i := range dst {
		var f []byte
		f, rest = nextField(rest)
		if len(f) == 0 {
			return fmt.Errorf("want %d ids, got %q", len(dst), bytes.TrimSpace(val))
		}
		v, err := strconv.ParseUint(string(f), 10, 32)
		if err != nil {
			return err
		}
		dst[i] = uint32(v)
	}
	if f, _ := nextField(rest); len(f) != 0 {
		return fmt.Errorf("want %d ids, got %q", len(dst), bytes.TrimSpace(val))
	}
	return nil
}

// nextField splits the first whitespace-separated field off b, without
// allocating.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isSpace(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
