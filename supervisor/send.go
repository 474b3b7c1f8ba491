package supervisor

import (
	"errors"
	"net/netip"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/internal/fd"
	"github.com/connvisor/connvisor/policy"
)

// A send that may carry a destination (sendto with an address or
// MSG_FASTOPEN, sendmsg, sendmmsg) is, like connect, never let through
// with CONTINUE: the target could swap the address, or dup2 another socket
// onto the descriptor, after the check. Each message is copied (see
// emulate.Copier: laid out so the kernel judges the copy as it judged the
// original), decided, and sent on a duplicate of the socket. A send that
// would block is tried without blocking on the loop and finished off it,
// in steps that each check the target still waits: the peer never gets
// more than the program is told was sent, and a restarted call (SA_RESTART)
// gets the count already sent instead of sending it twice.

// sendOp is one trapped send call.
type sendOp struct {
	c        *call
	pidfd    int
	flags    int  // the target's flags
	blocking bool // the file blocks and MSG_DONTWAIT is not set; see knowBlocking
	// known: blocking has been worked out. A datagram socket's file flags
	// are read only when an attempt without blocking found no room.
	known  bool
	sender *emulate.Sender
	held   *heldSend // off the loop: the call's state, shared with its restart
	mmsg   bool      // sendmmsg: held.sent counts entries, not bytes
}

func (op *sendOp) stream() bool { return op.c.info.Type == syscall.SOCK_STREAM }

// copyHint is what emulate's copier needs to size a first copy: a stream
// socket's send buffer, or 0 for a datagram socket.
func (op *sendOp) copyHint() int {
	if !op.stream() {
		return 0
	}
	n, err := emulate.SendBuffer(op.c.dup.Int())
	if err != nil || n <= 0 {
		return 1 // the copier's default
	}
	return n
}

// readSender reads the target's ids and capabilities once per call.
func (op *sendOp) readSender() (*emulate.Sender, error) {
	if op.sender == nil {
		s, err := emulate.ReadSender(int(op.c.n.Tid))
		if err != nil {
			return nil, err
		}
		op.sender = &s
	}
	return op.sender, nil
}

func (s *Supervisor) handleSend(r *receiver, n *Notification) {
	c := &call{n: *n, start: time.Now(), rcv: r}
	defer c.release()
	nr := int(n.Nr)
	op := &sendOp{c: c, flags: sendFlags(n)}
	// Checks the kernel makes before it looks at the descriptor.
	if e := s.checkBeforeDescriptor(op); e != 0 {
		s.reply(c, Errno(e))
		return
	}
	pidfd, errno, ok := s.sendSocket(c)
	if !ok {
		return
	}
	if errno != 0 {
		s.reply(c, Errno(errno))
		return
	}
	op.pidfd = pidfd
	if s.takeOverSend(c) {
		return // the restart of an interrupted send
	}
	if nr == unix.SYS_SENDMMSG {
		s.sendmmsg(op)
		return
	}
	m, errno, ok := s.readMessage(op)
	if !ok {
		return
	}
	if errno != 0 {
		s.reply(c, Errno(errno))
		return
	}
	defer func() {
		if m != nil {
			m.Close()
		}
	}()
	if errno := s.prepareMessage(op, m); errno != 0 {
		s.reply(c, Errno(errno))
		return
	}
	errno, wouldBlock := s.sendNow(op, m)
	if !wouldBlock {
		s.answerSend(op, int64(m.Sent), errno)
		return
	}
	held := m
	m = nil // the held goroutine owns it now
	h := s.beginHeldSend(c, int64(held.Sent))
	hc := c.takeOver()
	ok = s.hold(n.ID, func() {
		defer hc.release()
		defer held.Close()
		hop := *op
		hop.c, hop.held = hc, h
		hop.pidfd = -1 // the loop's cached pidfds are the loop's alone
		errno, gone := s.sendBlocking(&hop, held)
		s.answerHeldSend(&hop, h, gone, int64(held.Sent), errno)
	})
	if !ok {
		s.dropHeldSend(c, h)
		held.Close()
		s.reply(hc, Errno(syscall.EAGAIN))
	}
}

// sendFlags is the flags argument of a send (an int to the kernel).
func sendFlags(n *Notification) int {
	if int(n.Nr) == unix.SYS_SENDMSG {
		return int(int32(n.Args[2]))
	}
	return int(int32(n.Args[3]))
}

// checkBeforeDescriptor makes the checks a send's kernel entry makes
// before it looks at the descriptor: sendto's buffer range, sendmsg's
// flags. Without a copier (logged at start) there is nothing to check
// with; sendSocket fails the call.
func (s *Supervisor) checkBeforeDescriptor(op *sendOp) syscall.Errno {
	n := &op.c.n
	if int(n.Nr) != unix.SYS_SENDTO {
		return emulate.SendmsgCheck(op.flags)
	}
	if s.copier == nil {
		return 0
	}
	return s.copier.SendtoCheck(n.Args[1], n.Args[2])
}

// sendSocket duplicates the socket a send names (EBADF, ENOTSOCK first,
// as the kernel checks them first).
func (s *Supervisor) sendSocket(c *call) (int, syscall.Errno, bool) {
	pidfd, errno, ok := s.dupTargetSocket(c, c.n.Args[0])
	if !ok || errno != 0 {
		if ok && errno == syscall.EBADF {
			ok = stillValid(s.listener, c.n.ID)
		}
		return -1, errno, ok
	}
	if errno := s.inspect(c); errno != 0 {
		return pidfd, errno, true
	}
	if s.copier == nil {
		return pidfd, syscall.EPERM, true // logged when the supervisor started
	}
	return pidfd, 0, true
}

// readMessage copies the message of a sendto or sendmsg. ok is false when
// the target is gone and nobody waits for an answer.
func (s *Supervisor) readMessage(op *sendOp) (*emulate.Message, syscall.Errno, bool) {
	c, a := op.c, op.c.n.Args
	tid := int(c.n.Tid)
	var m *emulate.Message
	var errno syscall.Errno
	var err error
	if int(c.n.Nr) == unix.SYS_SENDTO {
		m, errno, err = s.copier.ReadSendto(tid, a[1], a[2], a[4], a[5], op.flags, op.copyHint())
	} else {
		m, errno, err = s.copier.ReadMsghdr(tid, a[1], op.flags, op.copyHint())
	}
	return s.checkRead(op, m, errno, err)
}

// opValid reports whether the call still waits for its answer.
func (s *Supervisor) opValid(op *sendOp) bool {
	if op.held != nil {
		return s.heldValid(op.held)
	}
	return stillValid(s.listener, op.c.n.ID)
}

// checkRead vouches for what was read from the target's memory: only a
// notification still valid after the read proves the tid was not reused.
func (s *Supervisor) checkRead(op *sendOp, m *emulate.Message, errno syscall.Errno, err error) (*emulate.Message, syscall.Errno, bool) {
	c := op.c
	if errors.Is(err, emulate.ErrTargetGone) || !s.opValid(op) {
		if m != nil {
			m.Close()
		}
		return nil, 0, false
	}
	if err != nil {
		s.log.Error("read message from target", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		return nil, syscall.EPERM, true
	}
	return m, errno, true
}

// prepareMessage checks the control messages of m as the kernel would for
// the target and decides its destination. The errno is the target's answer.
func (s *Supervisor) prepareMessage(op *sendOp, m *emulate.Message) syscall.Errno {
	// ____sys_sendmsg copies the control buffer before the protocol sees
	// the message.
	if e := m.ControlErrno(); e != 0 {
		return e
	}
	if m.HasControl() {
		if errno := s.prepareControl(op, m); errno != 0 {
			return errno
		}
	}
	if op.c.info.Domain == syscall.AF_UNIX && s.claimsAnyPid {
		// A receiver with SO_PASSCRED must see the target, not the
		// supervisor, as the sender.
		if tgid, uid, gid, err := emulate.ThreadCreds(op.pidfd); err == nil {
			m.AddCreds(tgid, uid, gid)
		}
	}
	errno := s.decideSend(op.c, m, op.flags)
	if errno == 0 {
		return 0
	}
	// Nothing is sent either way: what the kernel refuses before it looks
	// at the destination is what the program sees natively.
	if e := s.copier.SendRefused(op.c.dup.Int(), op.c.info, m, op.flags); e != 0 {
		return e
	}
	return errno
}

// prepareControl readies m's control messages for the supervisor to send.
func (s *Supervisor) prepareControl(op *sendOp, m *emulate.Message) syscall.Errno {
	c := op.c
	switch c.info.Domain {
	case syscall.AF_UNIX, syscall.AF_NETLINK:
		if c.info.Domain == syscall.AF_UNIX && c.info.Type == syscall.SOCK_SEQPACKET {
			// unix_seqpacket_sendmsg checks the state before the
			// control messages.
			if _, err := unix.Getpeername(c.dup.Int()); errors.Is(err, unix.ENOTCONN) {
				return syscall.ENOTCONN
			}
		}
		var readErr error
		check := func(pid, uid, gid uint32) syscall.Errno {
			sender, err := op.readSender()
			if err != nil {
				readErr = err
				return syscall.EPERM
			}
			return sender.CheckCreds(pid, uid, gid)
		}
		errno, err := m.PrepareSCM(op.pidfd, c.info.Domain == syscall.AF_UNIX, check)
		if err == nil {
			err = readErr
		}
		if err != nil {
			s.log.Error("prepare control messages", zap.Uint32("tid", c.n.Tid), zap.Error(err))
			return syscall.EPERM
		}
		if errno == 0 && op.sender != nil && !s.claimsAnyPid {
			// Checked as the target's: an unprivileged supervisor can
			// only send its own pid in place of the target's.
			m.RewriteCredsPid(op.sender.Tgid, uint32(unix.Getpid()))
		}
		return errno
	}
	ctl := m.InspectControl()
	if ctl.Reroute != "" {
		s.logRefusal(c, "source routing control message "+ctl.Reroute)
		return syscall.EPERM
	}
	if ctl.NeedsNetRaw || ctl.NeedsNetRawOrAdmin {
		sender, err := op.readSender()
		if err != nil {
			s.log.Error("read sender's capabilities", zap.Uint32("tid", c.n.Tid), zap.Error(err))
			return syscall.EPERM
		}
		if !ctl.Allowed(sender) {
			return syscall.EPERM
		}
	}
	return 0
}

// logRefusal logs and counts a side door refused in a send; the caller
// answers the call.
func (s *Supervisor) logRefusal(c *call, what string) {
	s.log.Warn("refused",
		zap.String("decision", "deny"),
		zap.String("reason", what),
		zap.Uint32("tid", c.n.Tid),
		zap.String("syscall", syscallName(c.n.Nr)),
		zap.String("errno", "EPERM"))
	s.stats.record(label("("+what+")"), policy.Deny, 0)
}

// knowBlocking works out op.blocking. Inspect read the file flags of a
// connection-mode socket already; a datagram socket's are read here, only
// once an attempt found no room (most sends never need them). The errno
// fails the call closed when they cannot be read.
func (s *Supervisor) knowBlocking(op *sendOp) syscall.Errno {
	if op.known {
		return 0
	}
	c := op.c
	if err := c.info.ReadFlags(c.dup.Int()); err != nil {
		s.log.Error("read the target socket's file flags", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		return syscall.EPERM
	}
	op.blocking = !c.info.NonBlock && op.flags&unix.MSG_DONTWAIT == 0
	op.known = true
	return 0
}

// sendNow makes one attempt at sending the rest of m, without blocking
// when the call may block. wouldBlock says the call must go on off the
// loop: the socket is full, a blocking stream send is only partly done, or
// a blocking fast-open connect is under way.
func (s *Supervisor) sendNow(op *sendOp, m *emulate.Message) (errno syscall.Errno, wouldBlock bool) {
	// Never blocking: on a file that does not block, or with MSG_DONTWAIT
	// already, the flag changes nothing.
	n, errno := s.sendOne(op.c, m, op.flags|unix.MSG_DONTWAIT)
	if errno == 0 {
		m.Sent += n
	}
	mayWait := errno == syscall.EAGAIN ||
		errno == syscall.EINPROGRESS && op.flags&unix.MSG_FASTOPEN != 0 && op.stream() ||
		errno == 0 && op.stream() && m.Remaining() > 0
	if !mayWait {
		return errno, false
	}
	if e := s.knowBlocking(op); e != 0 {
		return e, false
	}
	if !op.blocking {
		return errno, false
	}
	switch {
	case errno == syscall.EAGAIN:
		return 0, true
	case errno == syscall.EINPROGRESS && op.flags&unix.MSG_FASTOPEN != 0 && op.stream():
		// A blocking fast-open send waits for the handshake, then sends.
		return 0, true
	case errno == 0 && op.stream() && m.Remaining() > 0:
		return 0, true
	}
	return errno, false
}

// sendBlocking finishes a send that would block, off the loop: it waits
// for room (or the handshake) and sends in steps, each only while the
// target still waits for the call. gone says the target stopped waiting
// (a signal or death); the caller keeps what was sent for a restart.
// SO_SNDTIMEO bounds the wait as natively: the count so far, or EAGAIN.
func (s *Supervisor) sendBlocking(op *sendOp, m *emulate.Message) (errno syscall.Errno, gone bool) {
	c := op.c
	var deadline time.Time
	if t := emulate.SendTimeout(c.dup.Int()); t > 0 {
		deadline = c.start.Add(t)
	}
	flags := op.flags&^unix.MSG_FASTOPEN | unix.MSG_DONTWAIT
	fds := []unix.PollFd{{Fd: int32(c.dup.Int()), Events: unix.POLLOUT}}
	m.Drop() // read again for each attempt: nothing is held while waiting
	// pause: the socket said it was writable but the send found no room
	// (a datagram to a full receiver that poll does not watch): try again
	// after a pause instead of spinning.
	pause := false
	for {
		wait := pollValidEvery
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				if m.Sent > 0 && op.stream() {
					return 0, false
				}
				return syscall.EAGAIN, false
			}
			wait = min(wait, left)
		}
		fds[0].Revents = 0
		if pause {
			time.Sleep(wait)
		} else {
			unix.Poll(fds, int(wait.Milliseconds())+1)
		}
		if !s.heldValid(op.held) {
			return 0, true
		}
		if !pause && fds[0].Revents == 0 {
			continue // no room yet
		}
		errno, err := s.sendStep(op, m, flags)
		switch {
		case errors.Is(err, emulate.ErrTargetGone):
			return 0, true
		case err != nil:
			s.log.Error("read message from target", zap.Uint32("tid", c.n.Tid), zap.Error(err))
			return syscall.EPERM, false
		case errno == syscall.EAGAIN:
			pause = true
			continue
		case errno != 0:
			if m.Sent > 0 && op.stream() {
				return 0, false // the count so far; the error comes next call
			}
			return errno, false
		}
		pause = false
		if !op.stream() || m.Remaining() == 0 {
			return 0, false
		}
	}
}

// sendStep copies the next part of a held send and sends it while the
// call still waits (ErrTargetGone when it does not), adding what it sent
// to m.Sent. The copy is dropped after; at most copySlots steps hold one
// at once, however many sends are held.
func (s *Supervisor) sendStep(op *sendOp, m *emulate.Message, flags int) (syscall.Errno, error) {
	c := op.c
	s.copySlots <- struct{}{}
	defer func() { <-s.copySlots }()
	defer m.Drop()
	if err := s.copier.Refill(int(c.n.Tid), m, flags, op.stream()); err != nil {
		return 0, err
	}
	var errno syscall.Errno
	sent := s.heldStep(op.held, func() int64 {
		var n int
		n, errno = s.sendOne(c, m, flags)
		if errno != 0 {
			return 0
		}
		m.Sent += n
		if op.mmsg {
			return 0
		}
		return int64(n)
	})
	if !sent {
		return 0, emulate.ErrTargetGone
	}
	return errno, nil
}

// sendOne sends m on the duplicate. A datagram to a named UNIX socket is
// sent as the target (its credentials, and for a pathname its filesystem
// view, decided on the canonical path), like a UNIX connect.
func (s *Supervisor) sendOne(c *call, m *emulate.Message, flags int) (n int, errno syscall.Errno) {
	if !sendsToUnixName(c, m) {
		n, errno = m.Send(s.copier, c.dup.Int(), flags, nil)
		if errno == 0 {
			s.noteSentDNS(c, m) // the send bound it
		}
		return n, errno
	}
	var d policy.Dest
	m.Name.Decode(&d)
	tid := int(c.n.Tid)
	var e syscall.Errno
	var err error
	if d.Abstract {
		e, err = s.deputy.RunAsTarget(tid, false, func() syscall.Errno {
			var e syscall.Errno
			n, e = m.Send(s.copier, c.dup.Int(), flags, nil)
			return e
		})
	} else {
		// unix_dgram_sendmsg refuses MSG_OOB, a message its send buffer
		// cannot hold, a pending error and a fault in the data before it
		// looks the name up (and the policy decides it).
		if e := emulate.UnixDgramRefused(c.dup.Int(), m, flags); e != 0 {
			return 0, e
		}
		decide := func(canonical string) syscall.Errno {
			// A send retried while it would block is decided again only
			// if its name now resolves elsewhere.
			if m.DecidedPath == canonical && canonical != "" {
				return 0
			}
			d.Path = canonical
			errno := s.decideDest(c, d)
			if errno == 0 {
				m.DecidedPath = canonical
			}
			return errno
		}
		e, err = s.deputy.WithUnixPath(tid, &m.Name, decide, func(name *emulate.Sockaddr) syscall.Errno {
			var e syscall.Errno
			n, e = m.Send(s.copier, c.dup.Int(), flags, name)
			return e
		}, false)
	}
	if err != nil {
		s.log.Error("send as target", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		return 0, syscall.EACCES
	}
	return n, e
}

// sendsToUnixName: the message names a UNIX socket that the kernel will
// use as its destination: only a datagram socket's send does
// (unix_dgram_sendmsg; SEQPACKET drops the name, a stream refuses it), with
// a valid AF_UNIX name (anything else is the kernel's EINVAL).
func sendsToUnixName(c *call, m *emulate.Message) bool {
	return c.info.Domain == syscall.AF_UNIX && c.info.Type == syscall.SOCK_DGRAM &&
		m.HasName && m.Name.Family() == syscall.AF_UNIX && !m.Name.Malformed()
}

// sendDestination reports whether the kernel sends m to its name, so the
// policy must decide it. A name the kernel refuses (too short, a family
// the socket cannot use) or ignores (TCP without fast open, a connected
// stream, SEQPACKET, AF_UNSPEC on IPv6 UDP) names no destination: the
// kernel's own answer stands.
func sendDestination(c *call, m *emulate.Message, flags int) bool {
	if !m.HasName || m.Name.Malformed() {
		return false
	}
	fam := m.Name.Family()
	switch c.info.Domain {
	case syscall.AF_UNIX:
		return sendsToUnixName(c, m)
	case syscall.AF_INET, syscall.AF_INET6:
		if c.info.Type == syscall.SOCK_STREAM {
			// tcp_sendmsg_fastopen refuses AF_UNSPEC (EOPNOTSUPP), and
			// tcp_v6_connect an IPv4 name; on a connected socket the name
			// goes nowhere (EISCONN).
			if flags&unix.MSG_FASTOPEN == 0 || fam == syscall.AF_UNSPEC || !m.Name.Reaches(c.info.Domain) ||
				emulate.TCPv6RefusesIPv4(c.dup.Int(), c.info, &m.Name) {
				return false
			}
			_, err := unix.Getpeername(c.dup.Int())
			return err != nil
		}
		if c.info.Domain == syscall.AF_INET {
			// udp_sendmsg and raw_sendmsg take AF_UNSPEC as AF_INET.
			return fam == syscall.AF_INET || (fam == syscall.AF_UNSPEC && m.Name.Len() >= 16)
		}
		// udpv6_sendmsg: AF_INET goes the IPv4 way, AF_UNSPEC is no
		// name; rawv6_sendmsg takes AF_UNSPEC as AF_INET6. Deciding a
		// name the kernel would refuse is safe, missing one is not.
		return fam == syscall.AF_INET6 || fam == syscall.AF_INET ||
			(fam == syscall.AF_UNSPEC && c.info.Type != syscall.SOCK_DGRAM)
	}
	return true
}

// decideSend applies the policy to a message's destination, where the
// kernel would use it.
func (s *Supervisor) decideSend(c *call, m *emulate.Message, flags int) syscall.Errno {
	if !sendDestination(c, m, flags) {
		return 0
	}
	if c.info.Domain == syscall.AF_UNIX {
		if d := m.Name.Bytes(); len(d) > 2 && d[2] != 0 {
			return 0 // a pathname: decided on the canonical path, when sent (sendOne)
		}
	}
	var d policy.Dest
	m.Name.DecodeSendNameOn(&d, c.info.Domain, c.info.Type)
	use := emulate.UseSend
	if c.info.Type == syscall.SOCK_STREAM {
		use = emulate.UseConnect // fast open's implicit connect
	}
	if c.info.Domain == syscall.AF_INET6 && m.Name.Family() == syscall.AF_INET && d.Addr.IsValid() && d.Addr.IsUnspecified() {
		// 0.0.0.0 on an IPv6 socket goes the IPv4 way, to the socket's
		// IPv4 source: 127.0.0.1 unless it was bound, which getsockname
		// cannot tell from connected. Both are decided and the name is
		// sent as it is.
		emulate.ResolveName(&d, nil, c.dup.Int(), use)
		if lo := netip.AddrFrom4([4]byte{127, 0, 0, 1}); d.Addr != lo {
			alt := d
			alt.Addr = lo
			if errno := s.decideDest(c, alt); errno != 0 {
				return errno
			}
		}
		return s.decideDest(c, d)
	}
	// Sent to the address decided: another thread could bind the socket
	// before the send and move an unspecified destination elsewhere.
	m.Name = emulate.ResolveName(&d, &m.Name, c.dup.Int(), use)
	return s.decideDest(c, d)
}

// decideDest applies the policy to one send's destination and logs it.
func (s *Supervisor) decideDest(c *call, d policy.Dest) syscall.Errno {
	d.SockType = c.info.Type
	dc := &call{n: c.n, start: c.start, dest: d, info: c.info}
	pol := s.policy.Load()
	if err := s.identify(dc, pol); err != nil {
		s.log.Error("identify sending process", zap.Uint32("tid", c.n.Tid), zap.Error(err))
		return syscall.EPERM
	}
	s.prepareDNS(c.dup.Int(), &dc.dest)
	dec := s.decideAndCount(pol, &dc.dest)
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

// sendmmsg sends the entries of a sendmmsg in turn, as __sys_sendmmsg
// does: each is read, checked and decided only when its turn comes (so
// memory holds one message at a time, and a call the target stopped
// waiting for sends nothing more), its msg_len is written back at once,
// and the first failure ends the call (its errno only if nothing was
// sent). An entry that would block is finished off the loop, with the
// entries after it.
func (s *Supervisor) sendmmsg(op *sendOp) {
	vlen := s.mmsg(op.c).Len()
	done, errno, blocked, gone := s.sendEntriesNow(op, vlen)
	if gone {
		return
	}
	if blocked == nil {
		s.answerSend(op, int64(done), errno)
		return
	}
	c := op.c
	h := s.beginHeldSend(c, int64(done))
	op.mmsg = true
	hc := c.takeOver()
	ok := s.hold(c.n.ID, func() {
		defer hc.release()
		hop := *op
		hop.c, hop.held = hc, h
		// The loop's cached pidfds are the loop's alone (it closes and
		// reuses them): later entries' SCM_RIGHTS and credentials come
		// through a pidfd of this goroutine's own.
		hop.pidfd = -1
		if n, err := emulate.OpenThread(int(c.n.Tid)); err == nil {
			pidfd := fd.New(n)
			defer pidfd.Close()
			hop.pidfd = pidfd.Int()
		}
		errno, gone := s.sendBlocking(&hop, blocked)
		sent, partial := blocked.Sent, hop.stream() && blocked.Sent < blocked.Len
		blocked.Close()
		if !gone && errno == 0 {
			if s.mmsg(hc).WriteMsgLen(done, sent) == nil {
				done++
				s.heldEntryDone(h)
				if !partial {
					var more int
					more, errno, _, gone = s.sendEntries(&hop, done, vlen, true)
					done += more
				}
			} else {
				errno = syscall.EFAULT
			}
		}
		s.answerHeldSend(&hop, h, gone, int64(done), errno)
	})
	if !ok {
		s.dropHeldSend(c, h)
		blocked.Close()
		s.reply(hc, Errno(syscall.EAGAIN))
	}
}

// sendEntriesNow sends the entries of a sendmmsg on the loop, up to the
// first that would block, which it returns for the caller to finish off
// the loop. gone says nobody waits for an answer.
func (s *Supervisor) sendEntriesNow(op *sendOp, vlen int) (done int, errno syscall.Errno, blocked *emulate.Message, gone bool) {
	return s.sendEntries(op, 0, vlen, false)
}

// sendEntries sends entries from..vlen-1 and returns how many were sent
// and the errno that stopped them. Off the loop (held) each entry may
// block; on the loop the first entry that would block is returned, with
// its message.
func (s *Supervisor) sendEntries(op *sendOp, from, vlen int, held bool) (done int, errno syscall.Errno, blocked *emulate.Message, gone bool) {
	vec := s.mmsg(op.c)
	for i := from; i < vlen; i++ {
		m, errno, err := vec.Read(i, op.flags, op.copyHint())
		m, errno, ok := s.checkRead(op, m, errno, err)
		if !ok {
			return done, 0, nil, true
		}
		if errno == 0 {
			errno = s.prepareMessage(op, m)
		}
		if errno != 0 {
			if m != nil {
				m.Close()
			}
			return done, errno, nil, false
		}
		var wouldBlock bool
		if held {
			errno, gone = s.sendBlocking(op, m)
			if gone {
				m.Close()
				return done, 0, nil, true
			}
		} else {
			errno, wouldBlock = s.sendNow(op, m)
		}
		if wouldBlock {
			return done, 0, m, false
		}
		sent, partial := m.Sent, op.stream() && m.Sent < m.Len
		m.Close()
		if errno != 0 {
			return done, errno, nil, false
		}
		if vec.WriteMsgLen(i, sent) != nil {
			// Natively the entry was sent but not counted.
			return done, syscall.EFAULT, nil, false
		}
		done++
		if held {
			s.heldEntryDone(op.held)
		}
		if partial {
			break
		}
	}
	return done, 0, nil, false
}

// mmsg is the vector of c's sendmmsg in the target's memory.
func (s *Supervisor) mmsg(c *call) emulate.Mmsg {
	return s.copier.Mmsg(int(c.n.Tid), c.n.Args[1], c.n.Args[2])
}

// answerSend answers a send with the count sent, or errno when nothing
// was, and raises SIGPIPE where the kernel would: on a stream socket whose
// send failed with EPIPE without MSG_NOSIGNAL.
//
// A call whose answer finds nobody was interrupted (a signal) and will be
// restarted (SA_RESTART) or retried: it must get this answer, not be made
// again, so the answer is kept for it. That is also how SIGPIPE comes out
// as natively: the kernel makes it pending before the failed call returns,
// so a handler runs before the program sees EPIPE. Raised before the
// answer, it interrupts the trapped wait; the handler runs, and the
// restart (or the retry after EINTR) gets EPIPE. A default disposition
// kills the program at once, an ignored or blocked signal changes nothing,
// as natively.
func (s *Supervisor) answerSend(op *sendOp, sent int64, errno syscall.Errno) {
	c := op.c
	resp := Value(sent)
	// A stream send and a sendmmsg return what they sent; the error is
	// left for the next call.
	if errno != 0 && (sent == 0 || !(op.stream() || int(c.n.Nr) == unix.SYS_SENDMMSG)) {
		resp = Errno(errno)
	}
	sigpipe := errno == syscall.EPIPE && sent == 0 && op.stream() && op.flags&unix.MSG_NOSIGNAL == 0
	keep := sent > 0 || sigpipe
	// The restart's key needs the duplicate. On a connection-mode socket
	// the duplicate goes before the answer (see reply); a datagram
	// socket's stays for the key of an answer nobody took.
	var key repeatKey
	keyed := false
	if c.info.Type == syscall.SOCK_DGRAM {
		defer c.release()
	} else {
		if keep {
			key, keyed = sendKeyOf(c)
		}
		c.dup.Close()
	}
	if sigpipe {
		emulate.RaiseSIGPIPE(int(c.n.Tid), op.pidfd)
	}
	if delivered := s.answer(c.n.ID, resp); delivered || !keep {
		return
	}
	if !keyed {
		key, keyed = sendKeyOf(c)
	}
	if keyed {
		s.repeats.putSentKey(key, resp)
	}
}
