// Package fd gives a file descriptor one owner at a time. An *FD is closed
// once, by whoever holds it (Close is idempotent, so `defer f.Close()` is
// always right), and handing it to another owner is a call whose result has
// the type that says so (Move), not a number and a comment.
package fd

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// FD is an open descriptor and its owner's right to close it. Its number
// is read atomically, so goroutines that borrow it (Int) while another
// closes it see -1, never half a value; the kernel answers EBADF.
type FD struct{ n atomic.Int32 }

// New takes ownership of descriptor n. A negative n (the -1 of a failed
// system call) gives an FD that holds nothing, which closes as a no-op.
func New(n int) *FD {
	f := new(FD)
	f.n.Store(int32(max(n, -1)))
	return f
}

// Int is the descriptor's number, borrowed: valid until the owner closes
// it, and -1 once closed, moved, or for a nil FD.
func (f *FD) Int() int {
	if f == nil {
		return -1
	}
	return int(f.n.Load())
}

// Valid reports whether f holds an open descriptor.
func (f *FD) Valid() bool { return f.Int() >= 0 }

// Close closes the descriptor the first time it is called and does
// nothing after (or on a nil FD).
func (f *FD) Close() error {
	if f == nil {
		return nil
	}
	n := f.n.Swap(-1)
	if n < 0 {
		return nil
	}
	return unix.Close(int(n))
}

// Move hands the descriptor to a new owner, which it returns; f holds
// nothing after, so the old owner's deferred Close does nothing.
func (f *FD) Move() *FD {
	if f == nil {
		return New(-1)
	}
	return New(int(f.n.Swap(-1)))
}

// Release gives up ownership without closing and returns the number, for
// a caller that hands it to the kernel or to code that closes it itself.
func (f *FD) Release() int {
	if f == nil {
		return -1
	}
	return int(f.n.Swap(-1))
}
