package fd

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func pipe(t *testing.T) (*FD, *FD) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return New(p[0]), New(p[1])
}

func isOpen(n int) bool {
	_, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0)
	return !errors.Is(err, unix.EBADF)
}

func TestCloseIsIdempotent(t *testing.T) {
	r, w := pipe(t)
	defer w.Close()
	n := r.Int()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if isOpen(n) || r.Valid() || r.Int() != -1 {
		t.Fatalf("after Close: open %v, Int %d", isOpen(n), r.Int())
	}
	// The number may be reused by the next open: a second Close must not
	// close that one.
	r2, w2 := pipe(t)
	defer r2.Close()
	defer w2.Close()
	if err := r.Close(); err != nil || !isOpen(r2.Int()) || !isOpen(w2.Int()) {
		t.Fatalf("second Close: %v; other descriptors open %v %v", err, isOpen(r2.Int()), isOpen(w2.Int()))
	}
}

func TestMoveLeavesTheOldOwnerEmpty(t *testing.T) {
	r, w := pipe(t)
	defer w.Close()
	n := r.Int()
	moved := r.Move()
	r.Close() // the old owner's deferred Close
	if !isOpen(n) || moved.Int() != n || r.Valid() {
		t.Fatalf("after Move and the old owner's Close: open %v, moved %d, old valid %v", isOpen(n), moved.Int(), r.Valid())
	}
	moved.Close()
	if isOpen(n) {
		t.Fatal("the new owner's Close left it open")
	}
}

func TestNilAndNegative(t *testing.T) {
	var f *FD
	if f.Int() != -1 || f.Valid() || f.Close() != nil || f.Move().Valid() || f.Release() != -1 {
		t.Fatal("a nil FD must hold nothing and close as a no-op")
	}
	if g := New(-7); g.Int() != -1 || g.Close() != nil {
		t.Fatalf("New(-7): Int %d", g.Int())
	}
}

func TestRelease(t *testing.T) {
	r, w := pipe(t)
	defer w.Close()
	n := r.Release()
	r.Close()
	if !isOpen(n) {
		t.Fatal("Close after Release closed the descriptor")
	}
	unix.Close(n)
}
