package emulate

import (
	"bytes"
	"encoding/binary"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The decoders of target memory read it with process_vm_readv. These fuzz
// targets lay the fuzzed bytes out in the test process's own memory and
// decode them from its own pid, as the supervisor decodes a target's: an
// arena of readable pages followed by a PROT_NONE page, so that what is
// readable, what faults and what straddles the end are all known.

const arenaSize = 64 << 10

// arena is a readable region with an unreadable page right after it.
type arena struct {
	mem  []byte // arenaSize bytes, then the PROT_NONE page
	base uint64
	span uint64 // ptr's in-arena addresses fall in [base, base+span)
}

func newArena(t testing.TB) *arena {
	t.Helper()
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, arenaSize+page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("map the arena: %v", err)
	}
	if err := unix.Mprotect(mem[arenaSize:], unix.PROT_NONE); err != nil {
		t.Fatalf("protect the arena's end: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return &arena{mem: mem[:arenaSize], base: uint64(uintptr(unsafe.Pointer(&mem[0]))), span: arenaSize}
}

func (a *arena) reset(b []byte) {
	clear(a.mem)
	copy(a.mem, b)
}

// ptr turns a fuzzed 64-bit value into an address: mostly inside the
// arena (so that the decoder follows it), sometimes NULL, a kernel
// address, one straddling the arena's end, or below mmap_min_addr.
func (a *arena) ptr(v uint64) uint64 {
	switch v % 8 {
	case 5:
		return 0
	case 6:
		return 0xffff888000000000
	case 7:
		return a.base + arenaSize - (v>>3)%64 // straddles the PROT_NONE page
	case 4:
		if v&8 != 0 {
			return 0x1000
		}
	}
	return a.base + (v>>3)%a.span
}

// readable returns the bytes at [addr, addr+n) that this process could
// read: the arena's part of them, up to the first unreadable byte.
func (a *arena) readable(addr, n uint64) []byte {
	if addr < a.base || addr >= a.base+arenaSize {
		return nil
	}
	off := addr - a.base
	end := min(off+n, arenaSize)
	if end < off {
		end = arenaSize
	}
	return a.mem[off:end]
}

func newCopier(t testing.TB) *Copier {
	t.Helper()
	c, err := NewCopier()
	if err != nil {
		t.Fatalf("NewCopier: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// layMsghdr writes a struct msghdr for the fuzzed header at off in the
// arena, with its pointers (and those of its iovecs) made addresses.
func (a *arena) layMsghdr(off int, hdr []byte) uint64 {
	le := binary.NativeEndian
	var h [msghdrSize]byte
	copy(h[:], hdr)
	le.PutUint64(h[0:], a.ptr(le.Uint64(h[0:])))
	iov := a.ptr(le.Uint64(h[16:]))
	le.PutUint64(h[16:], iov)
	le.PutUint64(h[32:], a.ptr(le.Uint64(h[32:])))
	// Keep counts and lengths mostly in reach, with the raw value now
	// and then so that the kernel's limits are crossed too.
	if n := le.Uint64(h[24:]); n&0x100 == 0 {
		le.PutUint64(h[24:], n%16)
	}
	if n := le.Uint64(h[40:]); n&0x10000 == 0 {
		le.PutUint64(h[40:], n%1024)
	}
	// The iovec array, if it is in the arena: its bases made addresses,
	// its lengths kept small unless a high bit says otherwise.
	if iov >= a.base && iov < a.base+arenaSize {
		at := int(iov - a.base)
		for i := 0; i < int(min(le.Uint64(h[24:]), 64)) && at+iovecSize*(i+1) <= arenaSize; i++ {
			e := a.mem[at+iovecSize*i:]
			le.PutUint64(e, a.ptr(le.Uint64(e)))
			if n := le.Uint64(e[8:]); n>>62 == 0 {
				le.PutUint64(e[8:], n%(2*arenaSize))
			}
		}
	}
	// The header last: an iovec array may overlap it, and the header
	// is what the decoder reads first.
	copy(a.mem[off:], h[:])
	return a.base + uint64(off)
}

// checkMessage checks what ReadMsghdr or ReadSendto made of a message
// against what the arena holds: the copy's iovecs add up to the length
// the kernel considers, and the copied bytes are the target's readable
// bytes, in order, up to the first fault.
func checkMessage(t *testing.T, a *arena, c *Copier, m *Message) {
	t.Helper()
	if m.Len < 0 || m.Len > maxRWCount {
		t.Fatalf("Len %d outside 0..MAX_RW_COUNT", m.Len)
	}
	total := 0
	var copied []byte
	guard := uintptr(unsafe.Pointer(&c.guard[0]))
	inGuard := false
	for _, v := range m.iov {
		total += int(v.Len)
		if uintptr(unsafe.Pointer(v.Base)) == guard {
			inGuard = true
			continue
		}
		if inGuard && len(copied) > 0 {
			// Readable bytes after the guard are allowed only as the
			// start of another segment that fill did not read: it reads
			// nothing after a fault, so there must be none.
			t.Fatalf("copied bytes follow the guard page in the layout")
		}
		copied = append(copied, unsafe.Slice(v.Base, v.Len)...)
	}
	if total != m.Len {
		t.Fatalf("the copy's iovecs add up to %d bytes, the message is %d", total, m.Len)
	}
	var want []byte
	for _, s := range m.segs {
		if s.len > 0 && (s.base < a.base || s.base >= a.base+arenaSize) {
			// Outside the arena (a raw fuzzed base such as 0x1019000)
			// this process may have mappings of its own, which the
			// decoder reads as a target's: the model stops here.
			if len(copied) > len(want) {
				copied = copied[:len(want)]
			}
			break
		}
		r := a.readable(s.base, s.len)
		want = append(want, r...)
		if uint64(len(r)) < s.len {
			break // fill stops reading at the first fault
		}
	}
	// The copy may stop short of the readable bytes only at a copy
	// limit, the smallest of which is a datagram's.
	if len(copied) < len(want) {
		if len(copied) < datagramCopyLimit {
			t.Fatalf("copied %d of %d readable bytes", len(copied), len(want))
		}
		want = want[:len(copied)]
	}
	if !bytes.Equal(copied, want) {
		t.Fatalf("copied %d bytes that differ from the target's %d readable bytes", len(copied), len(want))
	}
}

// sndbuf is what the decoders take for a socket: its send buffer for a
// stream (Linux's default here), 0 for a datagram socket.
func sndbuf(stream bool) int {
	if stream {
		return 212992
	}
	return 0
}

func FuzzReadMsghdr(f *testing.F) {
	le := binary.NativeEndian
	hdr := func(name, namelen, iov, iovlen, ctl, ctllen uint64) []byte {
		b := make([]byte, msghdrSize)
		le.PutUint64(b[0:], name)
		le.PutUint64(b[8:], namelen)
		le.PutUint64(b[16:], iov)
		le.PutUint64(b[24:], iovlen)
		le.PutUint64(b[32:], ctl)
		le.PutUint64(b[40:], ctllen)
		return b
	}
	// Offsets as ptr reads them: (off<<3) is an arena offset.
	at := func(off uint64) uint64 { return off << 3 }
	body := make([]byte, 4096)
	f.Add(hdr(0, 0, at(1024), 1, 0, 0), body, uint32(0), false)
	f.Add(hdr(at(512), 16, at(1024), 3, at(2048), 24), body, uint32(unix.MSG_DONTWAIT), true)
	f.Add(hdr(5, 16, 7, 2, 6, 1<<20|0x10000), body, uint32(unix.MSG_ZEROCOPY), true) // NULL, straddling, kernel
	f.Add(hdr(0, 0, at(1024), 1025|0x100, 0, 0), body, uint32(0), false)             // UIO_MAXIOV + 1
	a, c := newArena(f), newCopier(f)
	f.Fuzz(func(t *testing.T, h, body []byte, flags uint32, stream bool) {
		a.reset(body)
		addr := a.layMsghdr(arenaSize-msghdrSize-int(len(h)%2)*8, h)
		m, errno, err := c.ReadMsghdr(os.Getpid(), addr, int(flags), sndbuf(stream))
		if err != nil {
			t.Fatalf("reading our own memory failed: %v", err)
		}
		if errno != 0 {
			if m != nil {
				t.Fatalf("errno %v with a message", errno)
			}
			return
		}
		defer m.Close()
		checkMessage(t, a, c, m)
		m.InspectControl()
	})
}

// FuzzReadMmsghdr decodes a sendmmsg vector entry by entry, as the
// supervisor does, writes each msg_len back, and checks that it lands where
// the kernel writes it and (the kernel writes it, never reads it) does not
// change what an entry decodes to.
func FuzzReadMmsghdr(f *testing.F) {
	f.Add(make([]byte, 3*mmsghdrSize), make([]byte, 1024), uint8(3))
	a, c := newArena(f), newCopier(f)
	f.Fuzz(func(t *testing.T, vec, body []byte, vlen uint8) {
		a.span = arenaSize
		n := min(int(vlen)%8, len(vec)/mmsghdrSize)
		if n == 0 {
			return
		}
		a.reset(body)
		// The vector in the second half, what it points to in the first
		// (or straddling the arena's end): no iovec array overlaps a
		// msg_len, so flipping one must change nothing the decoder reads
		// as lengths. Data and names may still cover it: not compared.
		a.span = arenaSize/2 - 1024
		start := arenaSize / 2
		for i := 0; i < n; i++ {
			a.layMsghdr(start+i*mmsghdrSize, vec[i*mmsghdrSize:])
			copy(a.mem[start+i*mmsghdrSize+msgLenOffset:], vec[i*mmsghdrSize+msgLenOffset:(i+1)*mmsghdrSize])
		}
		v := c.Mmsg(os.Getpid(), a.base+uint64(start), uint64(n))
		for i := 0; i < v.Len(); i++ {
			m1, e1, err := v.Read(i, 0, 0)
			if err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			if m1 != nil {
				checkMessage(t, a, c, m1) // before msg_len changes
			}
			le := binary.NativeEndian
			lenAt := a.mem[start+i*mmsghdrSize+msgLenOffset:]
			flipped := ^le.Uint32(lenAt)
			if err := v.WriteMsgLen(i, int(flipped)); err != nil {
				t.Fatalf("entry %d: write msg_len: %v", i, err)
			}
			if le.Uint32(lenAt) != flipped {
				t.Fatalf("entry %d: msg_len not written where the kernel writes it", i)
			}
			m2, e2, err := v.Read(i, 0, 0)
			if err != nil {
				t.Fatalf("entry %d again: %v", i, err)
			}
			if e1 != e2 || (m1 == nil) != (m2 == nil) {
				t.Fatalf("entry %d: msg_len changed the decoding: %v then %v", i, e1, e2)
			}
			if m1 != nil {
				if m1.Len != m2.Len || m1.HasName != m2.HasName || len(m1.control) != len(m2.control) || m1.ctlBad != m2.ctlBad {
					t.Fatalf("entry %d: msg_len changed the decoded message", i)
				}
				m1.Close()
				m2.Close()
			}
		}
	})
}

func FuzzReadSendto(f *testing.F) {
	f.Add(uint64(1024<<3), uint64(100), uint64(0), uint64(0), uint32(0), false, []byte("data"))
	f.Add(uint64(7), uint64(1<<40), uint64(512<<3), uint64(16), uint32(unix.MSG_FASTOPEN), true, []byte{2, 0, 0, 80, 127, 0, 0, 1})
	a, c := newArena(f), newCopier(f)
	f.Fuzz(func(t *testing.T, buf, n, addr, addrlen uint64, flags uint32, stream bool, body []byte) {
		a.reset(body)
		b := a.ptr(buf)
		if n>>62 == 0 {
			n %= 2 * arenaSize
		}
		if c.SendtoCheck(b, n) != 0 {
			return
		}
		sa := uint64(0)
		if addr%4 != 0 {
			sa = a.ptr(addr)
		}
		m, errno, err := c.ReadSendto(os.Getpid(), b, n, sa, addrlen, int(flags), sndbuf(stream))
		if err != nil {
			t.Fatalf("reading our own memory failed: %v", err)
		}
		if errno != 0 {
			return
		}
		defer m.Close()
		if m.HasName != (sa != 0) {
			t.Fatalf("HasName %v for address %#x", m.HasName, sa)
		}
		checkMessage(t, a, c, m)
	})
}

// FuzzControl runs the control-message translation on fuzzed control
// bytes: PrepareSCM (descriptors duplicated from this process through its
// own pidfd, credentials judged as this process's), InspectControl,
// AddCreds and RewriteCredsPid.
func FuzzControl(f *testing.F) {
	le := binary.NativeEndian
	cm := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		le.PutUint64(b, uint64(unix.CmsgLen(len(data))))
		le.PutUint32(b[8:], uint32(level))
		le.PutUint32(b[12:], uint32(typ))
		copy(b[cmsghdrSize:], data)
		return b
	}
	ints := func(v ...int32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			le.PutUint32(b[4*i:], uint32(x))
		}
		return b
	}
	self := int32(os.Getpid())
	f.Add(cm(unix.SOL_SOCKET, unix.SCM_RIGHTS, ints(0, 1, 2)), true)
	f.Add(cm(unix.SOL_SOCKET, unix.SCM_RIGHTS, []byte{0, 0, 0}), true)          // 3 bytes: the crash of issue 11
	f.Add(cm(unix.SOL_SOCKET, unix.SCM_RIGHTS, []byte{1, 0, 0, 0, 2, 0}), true) // 6 bytes
	f.Add(cm(unix.SOL_SOCKET, unix.SCM_RIGHTS, ints(-1)), true)
	f.Add(cm(unix.SOL_SOCKET, unix.SCM_RIGHTS, ints(0)), false)
	f.Add(append(cm(unix.SOL_SOCKET, unix.SCM_CREDENTIALS, ints(self, 0, 0)), cm(0, 1, ints(16))...), true)
	f.Add(cm(unix.SOL_SOCKET, unix.SCM_CREDENTIALS, ints(1, 65534, 65534)), true)
	f.Add(cm(unix.IPPROTO_IPV6, 57, make([]byte, 24)), false) // IPV6_RTHDR
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255, 1, 0, 0, 0, 1, 0, 0, 0}, true)
	// A 28-byte buffer: AddCreds once appended at 28, not at the aligned
	// 32 where the kernel looks for the next header (found here).
	f.Add(cm(12345, 1, ints(0, 0, 0))[:28], true)
	f.Fuzz(func(t *testing.T, ctl []byte, rights bool) {
		pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
		if err != nil {
			t.Skipf("pidfd_open: %v", err)
		}
		defer unix.Close(pidfd)
		sender, err := ReadSender(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		m := &Message{control: bytes.Clone(ctl)}
		errno, err := m.PrepareSCM(pidfd, rights, sender.CheckCreds)
		if err != nil {
			t.Fatalf("PrepareSCM on our own descriptors: %v", err)
		}
		dups := append([]int(nil), m.dupFDs...)
		for _, fd := range dups {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
				t.Fatalf("duplicate %d is not open: %v", fd, err)
			}
		}
		if errno == 0 {
			// Every whole int of every SCM_RIGHTS now names a duplicate.
			want := 0
			walkControl(m.control, func(cm *cmsg) syscall.Errno {
				if !cm.malformed && cm.level == unix.SOL_SOCKET && cm.typ == unix.SCM_RIGHTS {
					want += len(cm.data) / 4
				}
				return 0
			})
			if want != len(dups) {
				t.Fatalf("%d descriptors in SCM_RIGHTS, %d duplicated", want, len(dups))
			}
			m.InspectControl()
			m.AddCreds(uint32(self), uint32(os.Getuid()), uint32(os.Getgid()))
			m.RewriteCredsPid(uint32(self), 1)
			if m.creds == nil {
				t.Fatalf("no credentials after AddCreds")
			}
			found := false
			walkControl(m.control, func(cm *cmsg) syscall.Errno {
				if !cm.malformed && cm.level == unix.SOL_SOCKET && cm.typ == unix.SCM_CREDENTIALS && len(cm.data) == unix.SizeofUcred {
					found = true
				}
				return 0
			})
			if !found && !m.ctlBad {
				t.Fatalf("AddCreds left no SCM_CREDENTIALS the kernel would read")
			}
		}
		m.Close()
		for _, fd := range dups {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
				t.Fatalf("duplicate %d still open after Close", fd)
			}
		}
	})
}

// TestArenaMessage checks the fuzz harness itself: a plain message laid
// out in the arena decodes to its bytes, and one straddling the arena's
// end to the readable part followed by the guard.
func TestArenaMessage(t *testing.T) {
	le := binary.NativeEndian
	a := newArena(t)
	c := newCopier(t)
	body := make([]byte, 4096)
	for i := range body {
		body[i] = byte(i * 7)
	}
	// One iovec at offset 1024: 100 bytes at offset 2048.
	le.PutUint64(body[1024:], 2048<<3)
	le.PutUint64(body[1032:], 100)
	a.reset(body)
	h := make([]byte, msghdrSize)
	le.PutUint64(h[16:], 1024<<3)
	le.PutUint64(h[24:], 1)
	m, errno, err := c.ReadMsghdr(os.Getpid(), a.layMsghdr(arenaSize-msghdrSize, h), 0, 0)
	if err != nil || errno != 0 {
		t.Fatalf("ReadMsghdr: %v, %v", errno, err)
	}
	defer m.Close()
	if m.Len != 100 || !bytes.Equal(m.data, body[2048:2148]) {
		t.Fatalf("decoded %d bytes %x, want 100 bytes at 2048", m.Len, m.data)
	}
	checkMessage(t, a, c, m)

	// 100 bytes of which the last 40 are on the PROT_NONE page.
	le.PutUint64(a.mem[1024:], a.ptr(7|40<<3)) // 40 bytes before the end
	m2, errno, err := c.ReadMsghdr(os.Getpid(), a.base+arenaSize-msghdrSize, 0, 0)
	if err != nil || errno != 0 {
		t.Fatalf("ReadMsghdr straddling: %v, %v", errno, err)
	}
	defer m2.Close()
	if !m2.Faulted() || len(m2.iov) != 2 || m2.iov[0].Len != 40 || m2.iov[1].Len != 60 {
		t.Fatalf("straddling copy: faulted %v, iovecs %v", m2.Faulted(), m2.iov)
	}
	checkMessage(t, a, c, m2)
}
