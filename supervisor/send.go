package supervisor

import (
	"encoding/binary"
	"errors"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/policy"
)

// struct mmsghdr on 64-bit: a 56-byte msghdr, msg_len, padding.
const (
	mmsghdrSize     = 64
	msghdrLenOffset = 56
)

// pidfdSignalThread is PIDFD_SIGNAL_THREAD (Linux 6.9).
const pidfdSignalThread = 1

// handleSend polices a send that may carry a destination (sendto with an
// address or MSG_FASTOPEN, sendmsg, sendmmsg). Like connect, it is never
// let through with CONTINUE: the target could swap the address, or dup2
// another socket onto the descriptor, after the check. The message is
// copied, decided, and sent on a duplicate of the socket.
func (s *Supervisor) handleSend(n *Notification) {
	c := &call{n: *n, start: time.Now(), dup: -1}
	defer c.close()
	pidfd, errno, ok := s.sendSocket(c)
	if !ok {
		return
	}
	if errno != 0 {
		s.answer(n.ID, Errno(errno))
		return
	}
	msgs, flags, errno, err := s.readMessages(c, pidfd)
	defer func() {
		for _, m := range msgs {
			m.Close()
		}
	}()
	if errors.Is(err, emulate.ErrTargetGone) || !stillValid(s.listener, n.ID) {
		return
	}
	if err != nil {
		s.log.Error("read message from target", zap.Uint32("tid", n.Tid), zap.Error(err))
		s.answer(n.ID, Errno(syscall.EPERM))
		return
	}
	if errno != 0 {
		s.answer(n.ID, Errno(errno))
		return
	}
	// Blocking sockets are tried without blocking on the loop; one that
	// would block finishes off the loop.
	blocking := !c.info.NonBlock && flags&unix.MSG_DONTWAIT == 0
	sent, errno, sigpipe, rest := s.sendAll(c, msgs, flags|unix.MSG_DONTWAIT*btoi(blocking), pidfd)
	if errno == syscall.EAGAIN && blocking && rest < len(msgs) {
		dup := c.dup
		c.dup = -1 // the held goroutine owns it now
		held := msgs
		msgs = nil
		ok := s.hold(n.ID, func() {
			hc := &call{n: c.n, start: c.start, dup: dup, info: c.info}
			defer hc.close()
			defer func() {
				for _, m := range held {
					m.Close()
				}
			}()
			more, errno, sigpipe, _ := s.sendAll(hc, held[rest:], flags, -1)
			s.answerSend(hc, held, sent+more, rest+more, errno, sigpipe)
		})
		if !ok {
			s.answer(n.ID, Errno(syscall.EAGAIN))
		}
		return
	}
	s.answerSend(c, msgs, sent, rest, errno, sigpipe)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sendSocket duplicates the socket a send names (EBADF, ENOTSOCK first,
// as the kernel checks them first).
func (s *Supervisor) sendSocket(c *call) (int, syscall.Errno, bool) {
	pidfd, errno, ok := s.dupTargetSocket(c, c.n.Args[0])
	if !ok || errno != 0 {
		return -1, errno, ok
	}
	return pidfd, s.inspect(c), true
}

// readMessages copies the message(s) of a sendto, sendmsg or sendmmsg.
func (s *Supervisor) readMessages(c *call, pidfd int) ([]*emulate.Message, int, syscall.Errno, error) {
	a := c.n.Args
	tid := int(c.n.Tid)
	switch int(c.n.Nr) {
	case unix.SYS_SENDTO:
		flags := int(int32(a[3]))
		m := &emulate.Message{}
		if a[4] != 0 {
			sa, errno, err := emulate.ReadSockaddr(tid, a[4], a[5])
			if err != nil || errno != 0 {
				return nil, flags, errno, err
			}
			m.Name, m.HasName = sa, true
		}
		data, errno, err := emulate.ReadBuffer(tid, a[1], a[2])
		if err != nil || errno != 0 {
			return nil, flags, errno, err
		}
		m.Data = data
		return []*emulate.Message{m}, flags, 0, nil
	case unix.SYS_SENDMSG:
		flags := int(int32(a[2]))
		m, errno, err := emulate.ReadMessage(tid, a[1], pidfd)
		if err != nil || errno != 0 {
			return nil, flags, errno, err
		}
		return []*emulate.Message{m}, flags, 0, nil
	default: // sendmmsg
		flags := int(int32(a[3]))
		vlen := min(uint32(a[2]), maxIovecsPerCall)
		var msgs []*emulate.Message
		for i := uint32(0); i < vlen; i++ {
			m, errno, err := emulate.ReadMessage(tid, a[1]+uint64(i)*mmsghdrSize, pidfd)
			if err != nil || errno != 0 {
				if len(msgs) > 0 && err == nil {
					break // the kernel sends what came before a bad entry
				}
				for _, m := range msgs {
					m.Close()
				}
				return nil, flags, errno, err
			}
			msgs = append(msgs, m)
		}
		return msgs, flags, 0, nil
	}
}

// maxIovecsPerCall is UIO_MAXIOV, the kernel's cap on sendmmsg's vlen.
const maxIovecsPerCall = 1024

// sendAll decides and sends each message in turn; it stops at the first
// failure. sent counts bytes (sendto, sendmsg) and done counts messages.
func (s *Supervisor) sendAll(c *call, msgs []*emulate.Message, flags int, pidfd int) (sent int, errno syscall.Errno, sigpipe bool, done int) {
	for _, m := range msgs {
		if errno = s.decideSend(c, m, flags); errno != 0 {
			return sent, errno, false, done
		}
		n, e, sp := s.sendOne(c, m, flags)
		if e != 0 {
			return sent, e, sp, done
		}
		sent += n
		m.Sent = n
		done++
	}
	return sent, 0, false, done
}

// sendOne sends m on the duplicate. A datagram to a named UNIX socket is
// sent as the target (its credentials, and for a pathname its filesystem
// view, decided on the canonical path), like a UNIX connect.
func (s *Supervisor) sendOne(c *call, m *emulate.Message, flags int) (n int, errno syscall.Errno, sigpipe bool) {
	if !sendsToUnixName(c, m) {
		return m.Send(c.dup, flags)
	}
	var d policy.Dest
	m.Name.Decode(&d)
	tid := int(c.n.Tid)
	var e syscall.Errno
	var err error
	if d.Abstract {
		e, err = s.deputy.RunAsTarget(tid, false, func() syscall.Errno {
			var e syscall.Errno
			n, e, sigpipe = m.Send(c.dup, flags)
			return e
		})
	} else {
		decide := func(canonical string) syscall.Errno {
			d.Path = canonical
			return s.decideDest(c, d)
		}
		e, err = s.deputy.WithUnixPath(tid, &m.Name, decide, func(name *emulate.Sockaddr) syscall.Errno {
			var e syscall.Errno
			n, e, sigpipe = m.SendTo(c.dup, flags, name)
			return e
		}, false)
	}
	if err != nil {
		s.log.Error("send as target", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		return 0, syscall.EACCES, false
	}
	return n, e, sigpipe
}

// sendsToUnixName: the message names a UNIX socket that the kernel will
// use as its destination.
func sendsToUnixName(c *call, m *emulate.Message) bool {
	return c.info.Domain == syscall.AF_UNIX && m.HasName && !m.Name.Malformed() &&
		c.info.Type != syscall.SOCK_STREAM
}

// decideSend applies the policy to a message's destination, where the
// kernel would use it: datagram-style sockets, and TCP fast open.
func (s *Supervisor) decideSend(c *call, m *emulate.Message, flags int) syscall.Errno {
	if !m.HasName || m.Name.Malformed() {
		return 0
	}
	if c.info.Type == syscall.SOCK_STREAM && flags&unix.MSG_FASTOPEN == 0 {
		return 0 // ignored by TCP, refused by UNIX stream: no destination
	}
	if m.Decided {
		return 0
	}
	m.Decided = true
	var d policy.Dest
	m.Name.DecodeSendName(&d, c.info.Domain)
	if d.Family == syscall.AF_UNIX && !d.Abstract && sendsToUnixName(c, m) {
		return 0 // decided on the canonical path, when sent (sendOne)
	}
	emulate.ResolveUnspecified(&d, c.dup)
	return s.decideDest(c, d)
}

// decideDest applies the policy to one send's destination and logs it.
func (s *Supervisor) decideDest(c *call, d policy.Dest) syscall.Errno {
	d.SockType = c.info.Type
	dc := &call{n: c.n, start: c.start, dup: -1, dest: d, info: c.info}
	pol := s.policy.Load()
	if err := s.identify(dc, pol); err != nil {
		s.log.Error("identify sending process", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		return syscall.EPERM
	}
	dec := pol.Decide(&dc.dest)
	if s.wantsIdentity(dec) {
		dc.proc, _ = emulate.Identify(int(c.n.Tid))
	}
	var errno syscall.Errno
	if dec.Action == policy.Deny || dec.Action == policy.Fail {
		errno = dec.Errno
		if errno == 0 {
			errno = syscall.EPERM
		}
	}
	s.logDecision(dc, dec, errno)
	return errno
}

// answerSend answers a send with its result, writes sendmmsg's per-message
// lengths back, and raises SIGPIPE in the target where the kernel would.
func (s *Supervisor) answerSend(c *call, msgs []*emulate.Message, sent, done int, errno syscall.Errno, sigpipe bool) {
	if sigpipe {
		if pidfd, err := emulate.OpenThread(int(c.n.Tid)); err == nil {
			unix.PidfdSendSignal(pidfd, unix.SIGPIPE, nil, pidfdSignalThread)
			unix.Close(pidfd)
		}
	}
	if int(c.n.Nr) != unix.SYS_SENDMMSG {
		if errno != 0 && (sent == 0 || c.info.Type != syscall.SOCK_STREAM) {
			s.answer(c.n.ID, Errno(errno))
			return
		}
		s.answer(c.n.ID, Value(int64(sent)))
		return
	}
	if done == 0 && errno != 0 {
		s.answer(c.n.ID, Errno(errno))
		return
	}
	var msgLen [4]byte
	for i := 0; i < done; i++ {
		binary.NativeEndian.PutUint32(msgLen[:], uint32(msgs[i].Sent))
		addr := c.n.Args[1] + uint64(i)*mmsghdrSize + msghdrLenOffset
		if err := emulate.WriteMemory(int(c.n.Tid), addr, msgLen[:]); err != nil {
			s.answer(c.n.ID, Errno(syscall.EFAULT))
			return
		}
	}
	s.answer(c.n.ID, Value(int64(done)))
}
