package emulate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits on what is copied out of a target for one send. A datagram is at
// most 64 KiB; a stream send may be cut short, which send(2) allows.
const (
	maxSendCopy    = 1 << 20
	maxControlCopy = 64 << 10
	maxIovecs      = 1024 // UIO_MAXIOV
	msghdrSize     = 56
	iovecSize      = 16
)

// Message is a private copy of one message a target sends: the
// destination, the data and the control messages, with any descriptors in
// SCM_RIGHTS translated into the supervisor's own duplicates.
type Message struct {
	Name    Sockaddr
	HasName bool
	Data    []byte
	Control []byte
	// Decided is set once the policy has ruled on Name, so a send retried
	// after EAGAIN is not counted twice; Sent is the bytes the kernel took.
	Decided bool
	Sent    int
	dupFDs  []int
}

// Close releases the duplicated descriptors that rode in SCM_RIGHTS.
func (m *Message) Close() {
	for _, fd := range m.dupFDs {
		unix.Close(fd)
	}
	m.dupFDs = nil
}

// ReadBuffer copies n bytes at addr (a send's data). Too large a buffer is
// cut to maxSendCopy; for a datagram that makes the send fail with EMSGSIZE
// as it would natively, for a stream it is a short write.
func ReadBuffer(tid int, addr, n uint64) ([]byte, syscall.Errno, error) {
	if n > maxSendCopy {
		n = maxSendCopy
	}
	buf := make([]byte, n)
	if n == 0 {
		return buf, 0, nil
	}
	if err := ReadMemory(tid, addr, buf); err != nil {
		if errors.Is(err, syscall.EFAULT) {
			return nil, syscall.EFAULT, nil
		}
		return nil, 0, err
	}
	return buf, 0, nil
}

// ReadMessage copies the struct msghdr at addr and everything it points
// to, with the kernel's rules (copy_msghdr_from_user): a NULL name has no
// length, a name longer than sockaddr_storage is cut to it, more than
// UIO_MAXIOV iovecs is EMSGSIZE.
func ReadMessage(tid int, addr uint64, pidfd int) (*Message, syscall.Errno, error) {
	var hdr [msghdrSize]byte
	if err := ReadMemory(tid, addr, hdr[:]); err != nil {
		return errnoOf(err)
	}
	le := binary.NativeEndian
	namePtr := le.Uint64(hdr[0:])
	nameLen := int32(le.Uint32(hdr[8:]))
	iovPtr := le.Uint64(hdr[16:])
	iovLen := le.Uint64(hdr[24:])
	ctlPtr := le.Uint64(hdr[32:])
	ctlLen := le.Uint64(hdr[40:])
	m := &Message{}
	if namePtr == 0 {
		nameLen = 0
	}
	if nameLen < 0 {
		return nil, syscall.EINVAL, nil
	}
	if nameLen > MaxSockaddrLen {
		nameLen = MaxSockaddrLen
	}
	if nameLen > 0 {
		sa, errno, err := ReadSockaddr(tid, namePtr, uint64(nameLen))
		if err != nil || errno != 0 {
			return nil, errno, err
		}
		m.Name, m.HasName = sa, true
	}
	if iovLen > maxIovecs {
		return nil, syscall.EMSGSIZE, nil
	}
	if iovLen > 0 {
		iovs := make([]byte, iovLen*iovecSize)
		if err := ReadMemory(tid, iovPtr, iovs); err != nil {
			return errnoOf(err)
		}
		for i := uint64(0); i < iovLen; i++ {
			base := le.Uint64(iovs[i*iovecSize:])
			n := le.Uint64(iovs[i*iovecSize+8:])
			if int64(n) < 0 {
				return nil, syscall.EINVAL, nil
			}
			room := uint64(maxSendCopy - len(m.Data))
			if n > room {
				n = room
			}
			chunk, errno, err := ReadBuffer(tid, base, n)
			if err != nil || errno != 0 {
				return nil, errno, err
			}
			m.Data = append(m.Data, chunk...)
		}
	}
	if ctlLen > 0 {
		if ctlLen > maxControlCopy {
			return nil, syscall.ENOBUFS, nil
		}
		ctl := make([]byte, ctlLen)
		if err := ReadMemory(tid, ctlPtr, ctl); err != nil {
			return errnoOf(err)
		}
		errno, err := m.translateControl(ctl, pidfd)
		if err != nil || errno != 0 {
			m.Close()
			return nil, errno, err
		}
	}
	return m, 0, nil
}

// translateControl copies the control messages, replacing the target's
// descriptor numbers in SCM_RIGHTS by duplicates the supervisor owns.
// SCM_CREDENTIALS is refused: the supervisor's privileges would let a
// target claim any pid and uid.
func (m *Message) translateControl(ctl []byte, pidfd int) (syscall.Errno, error) {
	msgs, err := unix.ParseSocketControlMessage(ctl)
	if err != nil {
		return syscall.EINVAL, nil
	}
	for _, cm := range msgs {
		if cm.Header.Level != unix.SOL_SOCKET {
			m.Control = append(m.Control, rawCmsg(cm.Header.Level, cm.Header.Type, cm.Data)...)
			continue
		}
		switch cm.Header.Type {
		case unix.SCM_RIGHTS:
			// The kernel reads the whole ints in the payload and ignores
			// a partial one (scm_fp_copy).
			theirs := make([]int32, len(cm.Data)/4)
			for i := range theirs {
				theirs[i] = int32(binary.NativeEndian.Uint32(cm.Data[4*i:]))
			}
			ours := make([]int, 0, len(theirs))
			for _, fd := range theirs {
				dup, errno, err := DupTargetFD(pidfd, uint64(uint32(fd)))
				if err != nil || errno != 0 {
					for _, d := range ours {
						unix.Close(d)
					}
					return errno, err
				}
				ours = append(ours, dup)
			}
			m.dupFDs = append(m.dupFDs, ours...)
			m.Control = append(m.Control, unix.UnixRights(ours...)...)
		case unix.SCM_CREDENTIALS:
			return syscall.EPERM, nil
		default:
			m.Control = append(m.Control, rawCmsg(cm.Header.Level, cm.Header.Type, cm.Data)...)
		}
	}
	return 0, nil
}

func rawCmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// Send sends the message on fd (a duplicate of the target's socket) with
// flags, and returns the bytes sent or the errno. MSG_NOSIGNAL is always
// added: a broken pipe must not signal the supervisor; sigpipe reports
// whether the target would have received SIGPIPE.
func (m *Message) Send(fd int, flags int) (n int, errno syscall.Errno, sigpipe bool) {
	if m.HasName {
		return m.SendTo(fd, flags, &m.Name)
	}
	return m.SendTo(fd, flags, nil)
}

// SendTo is Send with the destination name instead of m's own (nil: none).
func (m *Message) SendTo(fd int, flags int, name *Sockaddr) (n int, errno syscall.Errno, sigpipe bool) {
	var hdr unix.Msghdr
	var iov unix.Iovec
	if len(m.Data) > 0 {
		iov.Base = &m.Data[0]
		iov.SetLen(len(m.Data))
		hdr.Iov = &iov
		hdr.SetIovlen(1)
	}
	if name != nil && name.len > 0 {
		hdr.Name = &name.raw[0]
		hdr.Namelen = uint32(name.len)
	}
	if len(m.Control) > 0 {
		hdr.Control = &m.Control[0]
		hdr.SetControllen(len(m.Control))
	}
	r, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdr)), uintptr(flags|unix.MSG_NOSIGNAL))
	if e != 0 {
		return 0, e, e == unix.EPIPE && flags&unix.MSG_NOSIGNAL == 0
	}
	return int(r), 0, false
}

func errnoOf(err error) (*Message, syscall.Errno, error) {
	if errors.Is(err, syscall.EFAULT) {
		return nil, syscall.EFAULT, nil
	}
	if errors.Is(err, ErrTargetGone) {
		return nil, 0, ErrTargetGone
	}
	return nil, 0, fmt.Errorf("read message: %w", err)
}
