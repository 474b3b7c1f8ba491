package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/fd"
)

// The upgrade protocol, over a SOCK_SEQPACKET socket (one record per
// message): the old agent sends a "listener" record for each listener,
// with the listener by SCM_RIGHTS; a "socket" record with the socket the
// runtimes connect to; then "end". The new agent answers "ok" once it
// supervises them all, and the old one exits. Until that "ok" the old
// agent keeps its duplicates, and takes everything back if the new one
// fails.
type upgradeRecord struct {
	Kind string `json:"kind"` // "listener", "socket", "end", "ok"
	// State is the listener's hand-off, reduced to what the agent uses.
	State *specs.ContainerProcessState `json:"state,omitempty"`
	// Policy is the file the container's policy came from.
	Policy string `json:"policy,omitempty"`
	// Stats are the container's counters, with its first listener only.
	Stats json.RawMessage `json:"stats,omitempty"`
}

const (
	upgradeListener = "listener"
	upgradeSocket   = "socket"
	upgradeEnd      = "end"
	upgradeOK       = "ok"
	// upgradeTimeout bounds each step of an upgrade.
	upgradeTimeout = 30 * time.Second
	// maxUpgradeRecord bounds one record (a reduced hand-off).
	maxUpgradeRecord = 128 << 10
)

// errNoPredecessor: --upgrade found no agent to take over from.
var errNoPredecessor = errors.New("no agent to take over")

// acceptUpgrades waits for a successor; once one took everything over it
// closes upgraded.
func (a *Agent) acceptUpgrades(upgraded chan<- struct{}) {
	for {
		conn, err := a.upgrade.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				a.log.Error("accept an upgrade", zap.Error(err))
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		ok := a.handOver(conn)
		conn.Close()
		if ok {
			close(upgraded)
			return
		}
	}
}

// handOver gives every listener and the socket to the agent on conn. On
// failure it takes them back and goes on serving.
func (a *Agent) handOver(conn *net.UnixConn) bool {
	if !sameUser(conn) {
		a.log.Warn("upgrade refused: the new agent runs as another user")
		return false
	}
	a.log.Info("upgrade: handing every listener to the new agent")
	a.mu.Lock()
	current := a.socket
	a.mu.Unlock()
	sock, err := current.File()
	if err != nil {
		a.log.Error("upgrade: duplicate the socket", zap.Error(err))
		return false
	}
	defer sock.Close()
	// Connections not yet accepted wait in the socket's backlog, which the
	// new agent takes with the socket; the ones being read finish here.
	current.Close()
	a.handoffs.Wait()

	a.mu.Lock()
	ls := make([]*listener, 0, len(a.listeners))
	for l := range a.listeners {
		ls = append(ls, l)
	}
	a.mu.Unlock()
	type detached struct {
		l   *listener
		dup *fd.FD // the listener's duplicate, until the new agent has it
	}
	var sent []detached
	statsSent := map[*container]bool{}
	fail := func(why string, err error) bool {
		a.log.Error("upgrade failed, this agent goes on supervising", zap.String("step", why), zap.Error(err))
		for _, d := range sent {
			a.readopt(d.l, d.dup)
		}
		if l, err := net.FileListener(sock); err == nil {
			ul := l.(*net.UnixListener)
			ul.SetUnlinkOnClose(false)
			a.mu.Lock()
			a.socket = ul
			a.mu.Unlock()
			go a.acceptHandoffs(ul)
		} else {
			a.log.Error("upgrade: take the socket back; no more hand-offs are accepted", zap.Error(err))
		}
		return false
	}
	for _, l := range ls {
		a.mu.Lock()
		l.handed = true
		a.mu.Unlock()
		n, err := l.sup.Detach()
		if err != nil {
			return fail("detach", err)
		}
		dup := fd.New(n)
		sent = append(sent, detached{l, dup})
		rec := upgradeRecord{Kind: upgradeListener, State: l.reduced(), Policy: l.c.source}
		if !statsSent[l.c] {
			statsSent[l.c] = true
			if b, err := json.Marshal(l.c.stats); err == nil && len(b) < maxUpgradeRecord/2 {
				rec.Stats = b // counters start afresh when they are too many to send
			}
		}
		if err := sendRecord(conn, rec, dup.Int()); err != nil {
			return fail("send a listener", err)
		}
	}
	if err := sendRecord(conn, upgradeRecord{Kind: upgradeSocket}, int(sock.Fd())); err != nil {
		return fail("send the socket", err)
	}
	if err := sendRecord(conn, upgradeRecord{Kind: upgradeEnd}, -1); err != nil {
		return fail("send the end", err)
	}
	rec, got, err := readRecord(conn)
	got.Close() // the answer carries no descriptor
	if err == nil && rec.Kind != upgradeOK {
		err = fmt.Errorf("answer %q, want %q", rec.Kind, upgradeOK)
	}
	if err != nil {
		return fail("wait for the new agent", err)
	}
	for _, d := range sent {
		d.dup.Close()
	}
	a.log.Info("upgrade done: the new agent supervises every listener", zap.Int("listeners", len(sent)))
	return true
}

// readopt supervises again a listener this agent had detached.
func (a *Agent) readopt(l *listener, listener *fd.FD) {
	h := handoff{raw: l.raw, listener: listener.Move()}
	if err := json.Unmarshal(l.raw, &h.state); err != nil {
		h.listener.Close()
		a.log.Error("upgrade: take a listener back", zap.String("container", l.c.id), zap.Error(err))
		return
	}
	if err := a.adopt(h, l.c.source); err != nil {
		a.log.Error("upgrade: take a listener back", zap.String("container", l.c.id), zap.Error(err))
	}
}

// reduced is the hand-off as the next agent needs it: id, pid, metadata
// and the annotations the agent reads (the runtime's may be large).
func (l *listener) reduced() *specs.ContainerProcessState {
	var st specs.ContainerProcessState
	json.Unmarshal(l.raw, &st) // it was read from this JSON
	keep := map[string]string{}
	for _, k := range []string{annotationPod, annotationNamespace, annotationContainer, PolicyAnnotation} {
		if v, ok := st.State.Annotations[k]; ok {
			keep[k] = v
		}
	}
	st.State.Annotations = keep
	st.State.Bundle = ""
	return &st
}

// takeOver connects to the running agent and takes its listeners and
// socket.
func (a *Agent) takeOver() error {
	path := UpgradePath(a.cfg.Listen)
	c, err := net.DialTimeout("unixpacket", path, upgradeTimeout)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("%w at %s: %v", errNoPredecessor, path, err)
		}
		return fmt.Errorf("--upgrade: reach the agent at %s: %w", path, err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	n := 0
	for {
		rec, got, err := readRecord(conn)
		if err != nil {
			got.Close()
			return fmt.Errorf("--upgrade: %w", err)
		}
		done, err := a.takeRecord(conn, path, rec, got, &n)
		if done || err != nil {
			return err
		}
	}
}

// takeRecord takes one record of an upgrade and the descriptor that came
// with it (closed here unless something took it over). adopted counts the
// listeners adopted; done is true after the last record.
func (a *Agent) takeRecord(conn *net.UnixConn, path string, rec upgradeRecord, got *fd.FD, adopted *int) (done bool, err error) {
	defer got.Close()
	switch rec.Kind {
	case upgradeListener:
		if !got.Valid() || rec.State == nil {
			return false, errors.New("--upgrade: a listener record without its listener or state")
		}
		raw, _ := json.Marshal(rec.State)
		h := handoff{state: *rec.State, raw: raw, listener: got.Move()}
		if err := a.adopt(h, rec.Policy); err != nil {
			a.log.Error("upgrade: listener refused: its container's trapped calls fail with ENOSYS",
				append(containerFields(h.state), zap.Error(err))...)
			return false, nil
		}
		*adopted++
		if rec.Stats != nil {
			a.mu.Lock()
			c := a.containers[h.state.State.ID]
			a.mu.Unlock()
			if err := c.stats.UnmarshalJSON(rec.Stats); err != nil {
				a.log.Warn("upgrade: the container's counters start afresh", zap.String("container", c.id), zap.Error(err))
			}
		}
	case upgradeSocket:
		if !got.Valid() {
			return false, errors.New("--upgrade: the socket record came without the socket")
		}
		// The os.File owns the number now; FileListener dups it.
		f := os.NewFile(uintptr(got.Release()), "agent socket")
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return false, fmt.Errorf("--upgrade: the socket: %w", err)
		}
		a.socket = l.(*net.UnixListener)
		a.socket.SetUnlinkOnClose(false)
	case upgradeEnd:
		if a.socket == nil {
			return false, errors.New("--upgrade: the old agent sent no socket")
		}
		if err := sendRecord(conn, upgradeRecord{Kind: upgradeOK}, -1); err != nil {
			return false, fmt.Errorf("--upgrade: answer: %w", err)
		}
		a.log.Info("upgrade: took over", zap.Int("listeners", *adopted))
		// The old agent closes its upgrade socket as it exits; make ours
		// in its place once it has.
		waitGone(path)
		return true, nil
	default:
		return false, fmt.Errorf("--upgrade: unknown record %q", rec.Kind)
	}
	return false, nil
}

// waitGone waits (a little) until nobody accepts on path any more.
func waitGone(path string) {
	deadline := time.Now().Add(upgradeTimeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("unixpacket", path, time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
}

func sendRecord(conn *net.UnixConn, rec upgradeRecord, fd int) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	conn.SetWriteDeadline(time.Now().Add(upgradeTimeout))
	_, _, err = conn.WriteMsgUnix(b, oob, nil)
	return err
}

// readRecord reads one record and the descriptor that came with it (an FD
// holding none when none came), which the caller owns, also on error.
func readRecord(conn *net.UnixConn) (upgradeRecord, *fd.FD, error) {
	var rec upgradeRecord
	buf := make([]byte, maxUpgradeRecord)
	oob := make([]byte, unix.CmsgSpace(4*maxHandoffFDs))
	conn.SetReadDeadline(time.Now().Add(upgradeTimeout))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	got := fd.New(-1)
	if oobn > 0 {
		fds, perr := parseRights(oob[:oobn])
		for i, f := range fds {
			if i == 0 {
				got = fd.New(f)
			} else {
				unix.Close(f) // a record carries one descriptor at most
			}
		}
		if perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return rec, got, fmt.Errorf("read a record: %w", err)
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n == 0 {
		return rec, got, fmt.Errorf("record truncated or empty (%d bytes)", n)
	}
	if err := json.Unmarshal(buf[:n], &rec); err != nil {
		return rec, got, fmt.Errorf("record: %w", err)
	}
	return rec, got, nil
}

// sameUser reports whether the peer runs as this agent's user (the socket
// is 0600 already; this also holds when it was made by another means).
func sameUser(conn *net.UnixConn) bool {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return err == nil && cred != nil && int(cred.Uid) == os.Geteuid()
}
