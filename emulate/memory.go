package emulate

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrTargetGone means the thread that made the call no longer exists; the
// notification it made is void and nobody is waiting for an answer.
var ErrTargetGone = errors.New("target thread is gone")

// goneOr says ErrTargetGone for the errors a /proc file or a pidfd of a
// thread that exited gives.
func goneOr(err error) error {
	if err == unix.ENOENT || err == unix.ESRCH {
		return ErrTargetGone
	}
	return err
}

// ReadSockaddr copies the sockaddr that tid passed to connect, applying the
// checks of the kernel's move_addr_to_kernel in the same order: an addrlen
// outside 0..128 is EINVAL, an address that cannot be read whole is EFAULT.
// The errno, when not zero, is the answer the target must get. The memory
// is hostile: anything short of a complete read is EFAULT, never a partial
// address.
func ReadSockaddr(tid int, ptr uint64, addrlen uint64) (Sockaddr, syscall.Errno, error) {
	var sa Sockaddr
	// The kernel takes addrlen as an int: only the low 32 bits count.
	n := int32(uint32(addrlen))
	if n < 0 || n > MaxSockaddrLen {
		return sa, syscall.EINVAL, nil
	}
	if n == 0 {
		return sa, 0, nil
	}
	if ptr == 0 {
		return sa, syscall.EFAULT, nil
	}
	got, err := readMemory(tid, ptr, sa.raw[:n])
	switch {
	case errors.Is(err, syscall.ESRCH):
		return sa, 0, ErrTargetGone
	case errors.Is(err, syscall.EFAULT):
		return sa, syscall.EFAULT, nil
	case err != nil:
		return sa, 0, fmt.Errorf("read %d bytes of sockaddr at %#x in tid %d: %w", n, ptr, tid, err)
	case got != int(n):
		return sa, syscall.EFAULT, nil
	}
	sa.len = int(n)
	return sa, 0, nil
}

// readMemory reads len(buf) bytes at addr in tid's address space.
func readMemory(tid int, addr uint64, buf []byte) (int, error) {
	local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMReadv(tid, local, remote, 0)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ReadMemory copies len(buf) bytes at addr out of tid's memory; a short
// read is EFAULT.
func ReadMemory(tid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if addr == 0 {
		return syscall.EFAULT
	}
	n, err := readMemory(tid, addr, buf)
	if errors.Is(err, syscall.ESRCH) {
		return ErrTargetGone
	}
	if err != nil {
		return err
	}
	if n != len(buf) {
		return syscall.EFAULT
	}
	return nil
}

// writeMemory copies buf into tid's memory at addr (for results the kernel
// would have written back, such as sendmmsg's msg_len).
func writeMemory(tid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMWritev(tid, local, remote, 0)
	if errors.Is(err, syscall.ESRCH) {
		return ErrTargetGone
	}
	if err != nil {
		return err
	}
	if n != len(buf) {
		return syscall.EFAULT
	}
	return nil
}
