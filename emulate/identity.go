package emulate

import (
	"bytes"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
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
	dir := "/proc/" + strconv.Itoa(tid)
	// One read into a buffer of our own: this runs for every logged
	// decision, before the answer.
	fd, err := unix.Open(dir+"/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return p, fmt.Errorf("identify tid %d: %w", tid, goneOr(err))
	}
	var buf [8192]byte
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return p, fmt.Errorf("identify tid %d: %w", tid, goneOr(err))
	}
	status := buf[:n]
	if p.Pid, err = statusField(status, "Tgid:"); err != nil {
		return p, fmt.Errorf("identify tid %d: %w", tid, err)
	}
	uid, err := statusField(status, "Uid:")
	if err != nil {
		return p, fmt.Errorf("identify tid %d: %w", tid, err)
	}
	p.UID = uint32(uid)
	// A kernel thread or a zombie has no executable; that is not an error.
	var link [unix.PathMax]byte
	if n, err := unix.Readlink(dir+"/exe", link[:]); err == nil {
		p.Exe = string(link[:n])
	}
	return p, nil
}

// statusField returns the first number after key in a /proc status file.
func statusField(status []byte, key string) (int, error) {
	i := bytes.Index(status, []byte("\n"+key))
	if i < 0 {
		return 0, fmt.Errorf("no %s line in status", key)
	}
	f := bytes.Fields(status[i+1+len(key):])
	if len(f) == 0 {
		return 0, fmt.Errorf("empty %s line in status", key)
	}
	return strconv.Atoi(string(f[0]))
}
