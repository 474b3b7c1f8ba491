package supervisor

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/fd"
)

// Notification is our copy of the kernel's struct seccomp_notif: the trapped
// call of one thread. Tid is a thread id, not a process id.
type Notification struct {
	ID    uint64
	Tid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

// response mirrors struct seccomp_notif_resp.
type response struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// Response is how a notification is answered.
type Response struct {
	Val      int64
	Errno    syscall.Errno
	Continue bool
}

// Allow answers a call with success (return value 0).
func Allow() Response { return Response{} }

// Errno answers a call with the failure e.
func Errno(e syscall.Errno) Response { return Response{Errno: e} }

// Value answers a call with the return value v.
func Value(v int64) Response { return Response{Val: v} }

// Continue lets the kernel run the call itself. Only safe when no decision
// depended on the call's memory arguments.
func Continue() Response { return Response{Continue: true} }

const (
	notifSize = int(unsafe.Sizeof(Notification{}))
	respSize  = int(unsafe.Sizeof(response{}))
)

// seccompGetNotifSizes is SECCOMP_GET_NOTIF_SIZES.
const seccompGetNotifSizes = 3

// checkNotifSizes makes sure the kernel's structures are the ones we lay out;
// a kernel with larger ones would write past our buffer.
func checkNotifSizes() error {
	var sizes struct{ notif, resp, data uint16 }
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, seccompGetNotifSizes, 0, uintptr(unsafe.Pointer(&sizes))); e != 0 {
		return fmt.Errorf("seccomp(SECCOMP_GET_NOTIF_SIZES): %w", e)
	}
	if int(sizes.notif) != notifSize || int(sizes.resp) != respSize {
		return fmt.Errorf("kernel seccomp_notif is %d bytes and seccomp_notif_resp %d, this build expects %d and %d",
			sizes.notif, sizes.resp, notifSize, respSize)
	}
	return nil
}

// errGone is the kernel's ENOENT from RECV or SEND: the target died or was
// interrupted and nobody waits for this answer any more. Not an error.
var errGone = errors.New("notification no longer valid")

// receive fills n with the next notification; the listener must be readable.
func receive(listener *fd.FD, n *Notification) error {
	*n = Notification{} // the kernel insists on a zeroed buffer (EINVAL)
	return notifIoctl(listener, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n), "SECCOMP_IOCTL_NOTIF_RECV")
}

// notifIoctl makes one listener ioctl, retrying EINTR; ENOENT (the target
// died or was interrupted) is errGone.
func notifIoctl(listener *fd.FD, req uintptr, arg unsafe.Pointer, name string) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener.Int()), req, uintptr(arg))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.ENOENT:
			return errGone
		default:
			return fmt.Errorf("%s: %w", name, e)
		}
	}
}

// send answers notification id.
func send(listener *fd.FD, id uint64, r Response) error {
	resp := response{ID: id, Val: r.Val}
	if r.Errno != 0 {
		resp.Val = 0
		resp.Error = -int32(r.Errno)
	}
	if r.Continue {
		resp = response{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
	}
	return notifIoctl(listener, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp), "SECCOMP_IOCTL_NOTIF_SEND")
}

// stillValid reports whether notification id still waits for an answer.
// Every read of target memory is followed by this check before the data is
// used: the tid may have died and been reused in between.
func stillValid(listener *fd.FD, id uint64) bool {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener.Int()), unix.SECCOMP_IOCTL_NOTIF_ID_VALID, uintptr(unsafe.Pointer(&id)))
	return e == 0
}

// setSyncWakeup asks the kernel to wake the supervisor on the target's CPU
// (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6): the round trip drops from
// ~55 µs to ~7 µs here. Older kernels answer EINVAL; the flag is an
// optimisation only.
func setSyncWakeup(listener *fd.FD) error {
	// The kernel takes the flags as the ioctl's argument itself, not
	// through a pointer (seccomp_notify_set_flags).
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener.Int()), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	if e != 0 {
		return fmt.Errorf("SECCOMP_IOCTL_NOTIF_SET_FLAGS(SYNC_WAKE_UP): %w", e)
	}
	return nil
}
