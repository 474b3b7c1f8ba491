package supervisor

import (
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/fd"
)

// TestNotifLayout keeps our copies of the kernel's structures the size the
// kernel says they are.
func TestNotifLayout(t *testing.T) {
	if err := checkNotifSizes(); err != nil {
		t.Fatal(err)
	}
	if got := unsafe.Sizeof(response{}); got != 24 {
		t.Fatalf("response is %d bytes, want 24", got)
	}
}

// TestSyncWakeupAccepted fails if setting SYNC_WAKE_UP on a real listener
// stops working (Linux 6.6+): every supervised call would quietly cost
// ~50 µs more.
func TestSyncWakeupAccepted(t *testing.T) {
	var uts unix.Utsname
	unix.Uname(&uts)
	prog, err := buildFilter(FilterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	listener := fd.New(loadListenerInThread(t, prog))
	defer listener.Close()
	if err := setSyncWakeup(listener); err != nil {
		t.Fatalf("kernel %s: %v", unix.ByteSliceToString(uts.Release[:]), err)
	}
}

// loadListenerInThread loads prog on a throwaway OS thread and returns
// the listener; the thread exits with its goroutine, so nothing else in
// the test process is filtered.
func loadListenerInThread(t *testing.T, prog []unix.SockFilter) int {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			ch <- result{-1, err}
			return
		}
		fd, err := loadFilter(prog, false)
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.fd
}
