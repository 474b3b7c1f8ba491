package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/fd"
)

const (
	// maxHandoffBytes bounds the JSON of one hand-off (annotations
	// included); Kubernetes limits all annotations to 256 KiB.
	maxHandoffBytes = 1 << 20
	// maxHandoffFDs is how many descriptors one hand-off may carry: the
	// runtime-spec names only seccompFd today, a few more leave room for
	// later versions. More are an error (and are closed).
	maxHandoffFDs = 4
	// DefaultHandoffTimeout is how long a runtime has to send its hand-off
	// once connected.
	DefaultHandoffTimeout = 5 * time.Second
)

// handoff is one runtime's message: the process state and the listener.
type handoff struct {
	state    specs.ContainerProcessState
	raw      []byte // the JSON as received, handed on at an upgrade
	listener *fd.FD // the filter's listener; nil until one is named
}

// errBadHandoff marks a message the agent refuses; the connection is
// closed and the agent goes on.
var errBadHandoff = errors.New("bad hand-off")

// readHandoff reads one hand-off from conn. runc never closes its end, so
// it reads until the JSON is complete, not until EOF. Every descriptor
// received is closed on error, and every one but the listener on success
// (the caller owns it then).
func readHandoff(conn *net.UnixConn, timeout time.Duration) (h handoff, err error) {
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return h, fmt.Errorf("set deadline: %w", err)
	}
	var fds []int
	defer func() {
		for _, n := range fds {
			if n != h.listener.Int() {
				unix.Close(n)
			}
		}
		if err != nil {
			h.listener.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*maxHandoffFDs))
	var data []byte
	for {
		n, oobn, flags, _, rerr := conn.ReadMsgUnix(buf, oob)
		n, oobn = max(n, 0), max(oobn, 0)
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				return h, fmt.Errorf("%w: %v", errBadHandoff, perr)
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			return h, fmt.Errorf("%w: more than %d descriptors", errBadHandoff, maxHandoffFDs)
		}
		if len(fds) > maxHandoffFDs {
			return h, fmt.Errorf("%w: %d descriptors, at most %d expected", errBadHandoff, len(fds), maxHandoffFDs)
		}
		data = append(data, buf[:n]...)
		if len(data) > 0 && json.Valid(data) {
			break
		}
		if rerr != nil {
			var ne net.Error
			if errors.As(rerr, &ne) && ne.Timeout() {
				return h, fmt.Errorf("%w: no complete message within %v (%d bytes)", errBadHandoff, timeout, len(data))
			}
			return h, fmt.Errorf("%w: connection ended after %d bytes: %v", errBadHandoff, len(data), rerr)
		}
		if n == 0 {
			return h, fmt.Errorf("%w: connection closed after %d bytes of incomplete JSON", errBadHandoff, len(data))
		}
		if len(data) > maxHandoffBytes {
			return h, fmt.Errorf("%w: more than %d bytes", errBadHandoff, maxHandoffBytes)
		}
	}
	if err := json.Unmarshal(data, &h.state); err != nil {
		return h, fmt.Errorf("%w: ContainerProcessState: %v", errBadHandoff, err)
	}
	h.raw = data
	if len(fds) == 0 {
		return h, fmt.Errorf("%w: no descriptor came with the message", errBadHandoff)
	}
	if len(fds) != len(h.state.Fds) {
		return h, fmt.Errorf("%w: %d descriptors for %d names (%q)", errBadHandoff, len(fds), len(h.state.Fds), h.state.Fds)
	}
	for i, name := range h.state.Fds {
		if name == specs.SeccompFdName {
			h.listener = fd.New(fds[i])
		}
	}
	if !h.listener.Valid() {
		return h, fmt.Errorf("%w: no descriptor named %q in %q", errBadHandoff, specs.SeccompFdName, h.state.Fds)
	}
	if h.state.State.ID == "" {
		return h, fmt.Errorf("%w: no container id (state.id)", errBadHandoff)
	}
	if err := isListener(h.listener.Int()); err != nil {
		return h, fmt.Errorf("%w: %v", errBadHandoff, err)
	}
	return h, nil
}

// parseRights returns the descriptors of every SCM_RIGHTS message in oob.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue // not SCM_RIGHTS (credentials): nothing to close
		}
		for _, fd := range got {
			unix.CloseOnExec(fd)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// isListener checks that fd is a seccomp notification listener: the
// kernel names its anonymous inode "seccomp notify" (kernel/seccomp.c).
func isListener(fd int) error {
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return fmt.Errorf("inspect the descriptor: %w", err)
	}
	if link != "anon_inode:seccomp notify" {
		return fmt.Errorf("the descriptor is %q, not a seccomp listener", link)
	}
	return nil
}
