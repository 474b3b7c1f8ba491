package emulate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A send is emulated by handing the kernel a private copy of the target's
// message laid out so that the kernel judges it as it judged the target's
// own call: the same lengths, flags and control bytes, with the data where
// the target's was readable and a guard page where the target's copy
// would fault. So the protocol's own checks (socket state, message size,
// family, flags) come in the kernel's order, a fault midway through a
// stream send sends what came before it, and a datagram larger than the
// protocol takes is refused before anything is read. What the copy cannot
// carry is checked here, in the kernel's order: the header, the name and
// the iovec array (copy_msghdr_from_user, import_iovec), and the control
// messages that the kernel would judge with the sender's own credentials
// (scm_send).

// Kernel limits that shape a copy.
const (
	maxIovecs  = 1024       // UIO_MAXIOV
	maxRWCount = 0x7ffff000 // MAX_RW_COUNT: INT_MAX rounded down to a page
	maxInt     = 1<<31 - 1
	scmMaxFD   = 253 // SCM_MAX_FD
	msghdrSize = 56
	iovecSize  = 16

	// mmsghdrSize is struct mmsghdr: a msghdr, then msg_len at
	// msgLenOffset, then padding.
	mmsghdrSize  = 64
	msgLenOffset = 56
	// maxMmsgEntries is UIO_MAXIOV again: __sys_sendmmsg caps vlen at it.
	maxMmsgEntries = maxIovecs

	// msgCmsgCompat is MSG_CMSG_COMPAT, bit 31 of the flags: sendmsg and
	// sendmmsg refuse it from user space (EINVAL), sendto ignores it.
	msgCmsgCompat = 1 << 31
)

// Bounds on what one send copies out of a target. A datagram socket refuses
// a larger message before reading it (UDP at 64 KiB, UNIX at its send
// buffer, 2 × wmem_max at most by default), so a datagram is copied whole
// up to datagramCopyLimit. A stream send is copied up to streamCopyLimit at
// a time; a blocking one goes on in further steps (see Message.ReadAt).
const (
	datagramCopyLimit = 1 << 19
	streamCopyLimit   = 4 << 20
	// maxStreamCopy bounds a first attempt sized by the send buffer.
	maxStreamCopy = 32 << 20
	// streamCopySlack is added to half again the send buffer for a first
	// attempt: it covers the one more packet (at most a 64 KiB GSO
	// packet) that a stream send takes beyond its buffer.
	streamCopySlack = 256 << 10
)

// Control buffers: up to smallControl bytes the kernel uses a buffer on its
// stack; a larger one comes from the socket's option memory, and one of
// optmem_max bytes or more is refused with ENOBUFS before it is read
// (sock_kmalloc).
const (
	smallControl        = 36 // sizeof(struct cmsghdr) + 20
	defaultOptmemMax    = 128 << 10
	maxControlCopyLimit = 4 << 20
)

// Copier copies sends out of targets. It owns the guard page that stands
// for memory the kernel would fail to read.
type Copier struct {
	guard     []byte // PROT_NONE
	userEnd   uint64 // the highest address access_ok accepts, plus one
	optmemMax int    // net.core.optmem_max
}

// NewCopier maps the guard page. It is placed low in the address space so
// that guard+length passes access_ok for any length the kernel accepts: the
// kernel must fail on the first byte it reads, not on the range check.
func NewCopier() (*Copier, error) {
	page := os.Getpagesize()
	p, err := unix.MmapPtr(-1, 0, unsafe.Add(nil, 1<<32), uintptr(page), unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("map the guard page: %w", err)
	}
	c := &Copier{guard: unsafe.Slice((*byte)(p), page), userEnd: taskSizeMax(), optmemMax: optmemMax()}
	if uint64(uintptr(p))+maxRWCount >= c.userEnd {
		c.Close()
		return nil, fmt.Errorf("guard page at %p is too high", p)
	}
	return c, nil
}

// Close unmaps the guard page.
func (c *Copier) Close() {
	if c.guard != nil {
		unix.Munmap(c.guard)
		c.guard = nil
	}
}

// taskSizeMax is x86_64's TASK_SIZE_MAX: 47-bit user addresses, or 56 with
// five-level page tables.
func taskSizeMax() uint64 {
	// A CPU with la57 may run a kernel without five-level tables; the
	// larger bound then only makes a read fail later, as EFAULT too.
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil && bytes.Contains(b, []byte(" la57")) {
		return 1<<56 - 4096
	}
	return 1<<47 - 4096
}

// optmemMax reads net.core.optmem_max (the supervisor's network
// namespace's: the target's is usually the same).
func optmemMax() int {
	b, err := os.ReadFile("/proc/sys/net/core/optmem_max")
	if err != nil {
		return defaultOptmemMax
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return defaultOptmemMax
	}
	return min(n, maxControlCopyLimit)
}

// accessOK is the kernel's access_ok: the range lies in user space.
func (c *Copier) accessOK(addr, n uint64) bool {
	end := addr + n
	return end >= addr && end < c.userEnd
}

// segment is one of the target's iovecs, as the kernel accepted it.
type segment struct{ base, len uint64 }

// Message is a private copy of one message a target sends.
type Message struct {
	Name Sockaddr
	// HasName: the target passed a name pointer (for sendto even with
	// addrlen 0, which some protocols refuse and others ignore).
	HasName bool
	// Len is the length the kernel considers (capped at MAX_RW_COUNT).
	Len int
	// Sent is what the kernel took of it.
	Sent int
	// DecidedPath is the canonical UNIX path the policy allowed for this
	// message, so a retry to the same socket is not decided twice.
	DecidedPath string

	segs    []segment    // the target's data, for further steps of a blocking send
	iov     []unix.Iovec // the copy as the kernel will read it
	data    []byte
	control []byte // translated control messages; nil with a control fault
	ctlLen  int
	ctlBad  bool          // the target's control buffer faults: the kernel's copy will too
	ctlErr  syscall.Errno // why ctlBad: EFAULT, or ENOBUFS for a buffer over optmem_max
	mapped  bool          // data is its own mapping (MSG_ZEROCOPY)
	faulted bool          // part of the target's data could not be read
	creds   *unix.Ucred   // the SCM_CREDENTIALS the message carries
	dupFDs  []int
	sendto  bool
}

// Close releases the descriptors that ride in SCM_RIGHTS and the data.
func (m *Message) Close() {
	for _, fd := range m.dupFDs {
		unix.Close(fd)
	}
	m.dupFDs = nil
	m.Drop()
}

// Faulted reports whether part of the data could not be read: the kernel
// will fail with EFAULT where it reaches that part.
func (m *Message) Faulted() bool { return m.faulted }

// ControlErrno is the errno of ____sys_sendmsg's copy of the control
// buffer (ENOBUFS when it cannot be allocated, EFAULT when it cannot be
// read), or 0. The kernel copies it before the protocol sees the message,
// so this error comes before every check of the socket's own, and before
// anything that looks at the destination.
func (m *Message) ControlErrno() syscall.Errno { return m.ctlErr }

// Remaining is what is left to send of the message.
func (m *Message) Remaining() int { return m.Len - m.Sent }

// SendtoCheck is sendto's first check, made before the kernel looks at
// the descriptor (__sys_sendto: import_ubuf): a buffer outside user space
// is EFAULT even on a bad descriptor.
func (c *Copier) SendtoCheck(buf, n uint64) syscall.Errno {
	if n > maxRWCount {
		n = maxRWCount
	}
	if !c.accessOK(buf, n) {
		return syscall.EFAULT
	}
	return 0
}

// ReadSendto copies the arguments of sendto(fd, buf, n, flags, addr,
// addrlen) after SendtoCheck and the descriptor's checks. stream is the
// send buffer of a stream socket (its first attempt may take about twice
// that), or 0 for a datagram socket.
func (c *Copier) ReadSendto(tid int, buf, n, addr, addrlen uint64, flags int, stream int) (*Message, syscall.Errno, error) {
	m := &Message{sendto: true}
	if addr != 0 {
		sa, errno, err := ReadSockaddr(tid, addr, addrlen)
		if err != nil || errno != 0 {
			return nil, errno, err
		}
		m.Name, m.HasName = sa, true
	}
	if n > maxRWCount {
		n = maxRWCount
	}
	m.segs = []segment{{buf, n}}
	m.Len = int(n)
	if err := c.copyData(tid, m, flags, stream); err != nil {
		return nil, 0, err
	}
	return m, 0, nil
}

// ReadMsghdr copies the struct msghdr at addr and what it points to, with
// the checks of copy_msghdr_from_user, import_iovec and ____sys_sendmsg in
// their order. The control messages are copied as they are; Prepare
// translates them for the socket they go to.
func (c *Copier) ReadMsghdr(tid int, addr uint64, flags int, stream int) (*Message, syscall.Errno, error) {
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
	if errno, err := c.readIovecs(tid, m, iovPtr, int(iovLen)); err != nil || errno != 0 {
		return nil, errno, err
	}
	if ctlLen > maxInt {
		return nil, syscall.ENOBUFS, nil
	}
	if ctlLen > 0 {
		m.ctlLen = int(ctlLen)
		if ctlLen <= smallControl || int(ctlLen) < c.optmemMax {
			ctl := make([]byte, ctlLen)
			err := ReadMemory(tid, ctlPtr, ctl)
			switch {
			case err == nil:
				m.control = ctl
			case errors.Is(err, syscall.EFAULT):
				m.ctlBad, m.ctlErr = true, syscall.EFAULT
			default:
				return errnoOf(err)
			}
		} else {
			// More than optmem_max allows: the kernel refuses it with
			// ENOBUFS before reading it (sock_kmalloc).
			m.ctlBad, m.ctlErr = true, syscall.ENOBUFS
		}
	}
	if err := c.copyData(tid, m, flags, stream); err != nil {
		return nil, 0, err
	}
	return m, 0, nil
}

// SendmsgCheck is the first check of sendmsg and sendmmsg, made before the
// kernel looks at the descriptor: MSG_CMSG_COMPAT from user space is
// EINVAL (a 32-bit compat call sets it in the kernel, never a caller).
func SendmsgCheck(flags int) syscall.Errno {
	if flags&msgCmsgCompat != 0 {
		return syscall.EINVAL
	}
	return 0
}

// Mmsg is the vector of struct mmsghdr that a sendmmsg names in a
// target's memory. The kernel reads its entries one at a time, each when
// its turn comes, and writes an entry's msg_len right after sending it
// (__sys_sendmmsg); Read and WriteMsgLen do the same.
type Mmsg struct {
	c    *Copier
	tid  int
	addr uint64
	n    int
}

// Mmsg is tid's sendmmsg vector at addr with vlen entries (an unsigned
// int to the kernel, capped at UIO_MAXIOV).
func (c *Copier) Mmsg(tid int, addr, vlen uint64) Mmsg {
	return Mmsg{c: c, tid: tid, addr: addr, n: min(int(uint32(vlen)), maxMmsgEntries)}
}

// Len is how many entries the kernel considers.
func (v Mmsg) Len() int { return v.n }

// Read copies entry i's message, as ReadMsghdr copies a sendmsg's.
func (v Mmsg) Read(i int, flags int, stream int) (*Message, syscall.Errno, error) {
	return v.c.ReadMsghdr(v.tid, v.entry(i), flags, stream)
}

// WriteMsgLen writes sent into entry i's msg_len, as the kernel does right
// after sending the entry. An error means the target's memory did not take
// it: natively the entry was sent but not counted (EFAULT).
func (v Mmsg) WriteMsgLen(i, sent int) error {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(sent))
	return writeMemory(v.tid, v.entry(i)+msgLenOffset, b[:])
}

func (v Mmsg) entry(i int) uint64 { return v.addr + uint64(i)*mmsghdrSize }

// readIovecs copies the iovec array and applies import_iovec's checks:
// the array must lie in user space (EFAULT); its entries are read in order
// and a negative length is EINVAL where it is met, so an entry that cannot
// be read is EFAULT only when no earlier one was negative
// (copy_iovec_from_user); then every range is checked (EFAULT) and the
// total is capped at MAX_RW_COUNT. A single iovec is capped before its
// range is checked (import_ubuf).
func (c *Copier) readIovecs(tid int, m *Message, iovPtr uint64, n int) (syscall.Errno, error) {
	if n == 0 {
		return 0, nil
	}
	if !c.accessOK(iovPtr, uint64(n)*iovecSize) {
		return syscall.EFAULT, nil
	}
	raw := make([]byte, n*iovecSize)
	got, err := readRanges(tid, raw, []unix.RemoteIovec{{Base: uintptr(iovPtr), Len: len(raw)}})
	if err != nil {
		return 0, err
	}
	le := binary.NativeEndian
	m.segs = make([]segment, n)
	for i := range m.segs {
		if (i+1)*iovecSize > got {
			return syscall.EFAULT, nil
		}
		m.segs[i] = segment{le.Uint64(raw[i*iovecSize:]), le.Uint64(raw[i*iovecSize+8:])}
		if int64(m.segs[i].len) < 0 {
			return syscall.EINVAL, nil
		}
	}
	total := uint64(0)
	for i := range m.segs {
		s := &m.segs[i]
		if n == 1 && s.len > maxRWCount {
			s.len = maxRWCount
		}
		if !c.accessOK(s.base, s.len) {
			return syscall.EFAULT, nil
		}
		if s.len > maxRWCount-total {
			s.len = maxRWCount - total
		}
		total += s.len
	}
	m.Len = int(total)
	return 0, nil
}

// copyData copies the message's data up to the copy limit and lays out the
// iovecs the kernel will read: the copied bytes, then the guard page from
// the first byte that could not be read (or was not copied) on, so that
// the total length stays the target's. A stream socket takes up to its
// send buffer and one more packet in one attempt, so that much is copied
// (sndbuf is the doubled value getsockopt reports).
func (c *Copier) copyData(tid int, m *Message, flags int, sndbuf int) error {
	limit := datagramCopyLimit
	if sndbuf > 0 {
		limit = min(max(sndbuf+sndbuf/2+streamCopySlack, streamCopyLimit), maxStreamCopy)
	}
	return c.fill(tid, m, 0, min(m.Len, limit), flags)
}

// fill copies want bytes of m's data, starting at offset from, and lays
// out m.iov for them followed by the guard for the rest.
func (c *Copier) fill(tid int, m *Message, from, want int, flags int) error {
	m.Drop()
	if want > 0 {
		if flags&unix.MSG_ZEROCOPY != 0 {
			// The kernel may go on reading pinned pages after the call:
			// a mapping of their own, unmapped after, is never reused for
			// other data while it does.
			b, err := unix.Mmap(-1, 0, want, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				return fmt.Errorf("map a zerocopy buffer: %w", err)
			}
			m.data, m.mapped = b, true
		} else {
			m.data = make([]byte, want)
		}
	}
	m.iov = m.iov[:0]
	// Where each segment's bytes come from and how many are wanted: all
	// of them are read in one process_vm_readv, which reads the remote
	// ranges in order and stops at the first that faults, as reading them
	// one by one and stopping at the first short read would.
	type part struct{ n, take int }
	parts := make([]part, 0, len(m.segs))
	remote := make([]unix.RemoteIovec, 0, len(m.segs))
	off, wanted := 0, 0 // off: position in the message
	for _, s := range m.segs {
		base, n := s.base, int(s.len)
		if off+n <= from {
			off += n
			continue
		}
		if skip := from - off; skip > 0 {
			base += uint64(skip)
			n -= skip
			off += skip
		}
		take := min(n, want-wanted)
		if take > 0 {
			remote = append(remote, unix.RemoteIovec{Base: uintptr(base), Len: take})
		}
		parts = append(parts, part{n: n, take: take})
		wanted += take
		off += n
	}
	got, err := readRanges(tid, m.data[:wanted], remote)
	if err != nil {
		return err
	}
	m.faulted = m.faulted || got < wanted
	at := 0 // bytes of m.data laid out so far
	for _, p := range parts {
		r := min(p.take, got-at)
		if r > 0 {
			m.iov = append(m.iov, iovec(&m.data[at], r))
			at += r
		}
		if rest := p.n - r; rest > 0 {
			m.iov = append(m.iov, iovec(&c.guard[0], rest))
		}
	}
	return nil
}

// readRanges reads the remote ranges in order into buf (as long as their
// total): the count is short from the first byte that cannot be read.
func readRanges(tid int, buf []byte, remote []unix.RemoteIovec) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{iovec(&buf[0], len(buf))}
	n, err := unix.ProcessVMReadv(tid, local, remote, 0)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, syscall.EFAULT):
		return 0, nil
	case errors.Is(err, syscall.ESRCH):
		return 0, ErrTargetGone
	}
	return 0, fmt.Errorf("read %d bytes in %d ranges in tid %d: %w", len(buf), len(remote), tid, err)
}

func iovec(p *byte, n int) unix.Iovec {
	v := unix.Iovec{Base: p}
	v.SetLen(n)
	return v
}

// Refill copies the message's data again for another attempt at a send
// that would block. A stream send goes on from what it has sent (the
// control messages went with the first part); a datagram is sent whole
// or not at all. Data is read again each time, as the kernel reads it when
// it finally sends, and dropped after each attempt (Drop), so a held send
// holds no copy while it waits.
func (c *Copier) Refill(tid int, m *Message, flags int, stream bool) error {
	if !stream {
		return c.fill(tid, m, 0, min(m.Len, datagramCopyLimit), flags)
	}
	if m.Sent > 0 {
		// Descriptors went with the first part; credentials go with
		// every part (unix_stream_sendmsg gives each skb the call's).
		m.control, m.ctlLen, m.ctlBad, m.ctlErr = nil, 0, false, 0
		if m.creds != nil {
			m.control = unix.UnixCredentials(m.creds)
		}
	}
	return c.fill(tid, m, m.Sent, min(m.Remaining(), streamCopyLimit), flags)
}

// contiguous lays out a sendto's copy of two parts, the bytes read then the
// guard for the rest, as one buffer: the bytes right before a PROT_NONE
// page, so that the kernel reads them and faults where it would have in
// the target's memory. The mapping is low, like the guard, so the whole
// length passes access_ok. ok is false when it cannot be made.
func (c *Copier) contiguous(m *Message) (iov []unix.Iovec, release func(), ok bool) {
	page := len(c.guard)
	data, rest := int(m.iov[0].Len), int(m.iov[1].Len)
	if m.iov[0].Base == &c.guard[0] || m.iov[1].Base != &c.guard[0] {
		return nil, nil, false
	}
	size := (data+page-1)/page*page + page
	p, err := unix.MmapPtr(-1, 0, unsafe.Add(nil, 1<<32), uintptr(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, nil, false
	}
	b := unsafe.Slice((*byte)(p), size)
	release = func() { unix.Munmap(b) }
	start := size - page - data
	if unix.Mprotect(b[size-page:], unix.PROT_NONE) != nil || !c.accessOK(uint64(uintptr(p))+uint64(start), uint64(data+rest)) {
		release()
		return nil, nil, false
	}
	copy(b[start:], unsafe.Slice(m.iov[0].Base, data))
	return []unix.Iovec{iovec(&b[start], data+rest)}, release, true
}

// Drop releases the copied data (not the descriptors of SCM_RIGHTS).
func (m *Message) Drop() {
	if m.mapped && m.data != nil {
		unix.Munmap(m.data)
	}
	m.data, m.iov, m.mapped = nil, nil, false
}

// Send performs the send on fd, a duplicate of the target's socket, with
// the target's flags (MSG_NOSIGNAL added: the supervisor must never get
// SIGPIPE) and the name the target passed, or name when it is not nil (a
// UNIX pathname resolved as the target). It returns what the kernel
// returned.
func (m *Message) Send(c *Copier, fd int, flags int, name *Sockaddr) (int, syscall.Errno) {
	if name == nil && m.HasName {
		name = &m.Name
	}
	flags |= unix.MSG_NOSIGNAL
	iov := m.iov
	if m.sendto && m.control == nil && !m.ctlBad && len(iov) == 2 && name != nil && name.len == 0 {
		// The name pointer with addrlen 0 that only sendto keeps, and a
		// copy in two parts: lay it out as one buffer.
		if one, release, ok := c.contiguous(m); ok {
			defer release()
			iov = one
		}
	}
	if m.sendto && m.control == nil && !m.ctlBad && len(iov) <= 1 {
		// sendto itself: it keeps a name pointer with addrlen 0, which
		// sendmsg would drop (udp_sendmsg refuses it with EINVAL, where
		// the sendmsg without it would go to the connected peer), and
		// ignores MSG_CMSG_COMPAT.
		var buf, namePtr unsafe.Pointer
		if len(iov) == 1 {
			buf = unsafe.Pointer(iov[0].Base)
		}
		nameLen := 0
		if name != nil {
			namePtr, nameLen = unsafe.Pointer(&name.raw[0]), name.len
		}
		r, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(buf), uintptr(m.Len-m.Sent),
			uintptr(flags&^msgCmsgCompat), uintptr(namePtr), uintptr(nameLen))
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
	var hdr unix.Msghdr
	if len(m.iov) > 0 {
		hdr.Iov = &m.iov[0]
		hdr.SetIovlen(len(m.iov))
	}
	if name != nil && name.len > 0 {
		hdr.Name = &name.raw[0]
		hdr.Namelen = uint32(name.len)
	}
	switch {
	case m.ctlBad:
		hdr.Control = &c.guard[0]
		hdr.SetControllen(m.ctlLen)
	case len(m.control) > 0:
		hdr.Control = &m.control[0]
		hdr.SetControllen(len(m.control))
	}
	if m.sendto {
		flags &^= msgCmsgCompat
	}
	r, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdr)), uintptr(flags))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// pidfdSignalThread is PIDFD_SIGNAL_THREAD (Linux 6.9): the signal goes
// to the thread, not its thread group.
const pidfdSignalThread = 1

// RaiseSIGPIPE sends SIGPIPE to thread tid as the kernel's send_sig does
// when a stream send fails with EPIPE without MSG_NOSIGNAL: the
// supervisor's own send on the duplicate never raises it (Send adds
// MSG_NOSIGNAL), so the target must get it from here. pidfd is a pidfd for
// tid, or -1 to open one for the purpose. A thread that is gone gets
// nothing.
func RaiseSIGPIPE(tid, pidfd int) {
	if pidfd < 0 {
		var err error
		if pidfd, err = OpenThread(tid); err != nil {
			return
		}
		defer unix.Close(pidfd)
	}
	unix.PidfdSendSignal(pidfd, unix.SIGPIPE, nil, pidfdSignalThread)
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
