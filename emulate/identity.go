package emulate

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
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
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return p, fmt.Errorf("identify tid %d: %w", tid, goneOr(unwrapPathErr(err)))
	}
	if p.Pid, err = statusField(status, "Tgid:"); err != nil {
		return p, fmt.Errorf("identify tid %d: %w", tid, err)
	}
	uid, err := statusField(status, "Uid:")
	if err != nil {
		return p, fmt.Errorf("identify tid %d: %w", tid, err)
	}
	p.UID = uint32(uid)
	// A kernel thread or a zombie has no executable; that is not an error.
	p.Exe, _ = os.Readlink(dir + "/exe")
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
