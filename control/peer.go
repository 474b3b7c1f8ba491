package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Peer is who is at the other end of a control connection, from
// SO_PEERCRED: the credentials of the process that connected.
type Peer struct {
	Pid int32
	UID uint32
	GID uint32
}

type peerKey struct{}

func peerOf(ctx context.Context) Peer {
	p, _ := ctx.Value(peerKey{}).(Peer)
	return p
}

func readPeer(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, errors.New("not a UNIX connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if serr != nil {
		return Peer{}, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return Peer{Pid: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}

// guardedListener closes, at accept, every connection the API must not
// serve: from connvisor's own process (so from the wrapped tree, whose
// connects the supervisor makes), or from another user than connvisor's
// (root excepted).
type guardedListener struct {
	net.Listener
	log       *zap.Logger
	self      int32
	uid       uint32
	allowSelf bool
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		p, err := readPeer(c)
		var why string
		switch {
		case err != nil:
			why = err.Error()
		case p.Pid == l.self && !l.allowSelf:
			why = "the peer is connvisor itself: a connect made for the wrapped tree"
		case descendantOf(p.Pid, l.self):
			why = "the peer is a process of the wrapped tree"
		case p.UID != l.uid && p.UID != 0:
			why = "the peer runs as another user"
		}
		if why == "" {
			return c, nil
		}
		l.log.Warn("control connection refused", zap.String("why", why),
			zap.Int32("peer_pid", p.Pid), zap.Uint32("peer_uid", p.UID))
		c.Close()
	}
}

// maxTreeDepth bounds the walk up a peer's parents.
const maxTreeDepth = 128

// descendantOf reports whether pid is a child, grandchild... of ancestor,
// from the parent pids in /proc: what the kernel shows when it made the
// connect itself (--mode continue, an allow-all policy). A process of the
// tree re-parented to init (a double fork) is not found this way.
func descendantOf(pid, ancestor int32) bool {
	for range maxTreeDepth {
		if pid <= 1 {
			return false
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// "PID (COMM) STATE PPID ...": COMM may hold spaces and parens.
		rest := b[bytes.LastIndexByte(b, ')')+1:]
		var state string
		var ppid int32
		if _, err := fmt.Sscan(string(rest), &state, &ppid); err != nil {
			return false
		}
		if ppid == ancestor {
			return true
		}
		pid = ppid
	}
	return false
}

func newGuardedListener(ln net.Listener, log *zap.Logger, allowSelf bool) *guardedListener {
	return &guardedListener{Listener: ln, log: log, self: int32(os.Getpid()), uid: uint32(os.Geteuid()), allowSelf: allowSelf}
}
