package emulate

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBoundName: the kernel names the path a listening socket was bound
// at, found by the inode of any other name of the socket file.
func TestBoundName(t *testing.T) {
	dir := t.TempDir()
	bound := filepath.Join(dir, "bound.sock")
	ln, err := net.Listen("unix", bound)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	link := filepath.Join(dir, "link.sock")
	if err := os.Link(bound, link); err != nil {
		t.Skipf("hard link of a socket: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		t.Fatal(err)
	}
	got, err := boundName(st.Dev, st.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if got != bound {
		t.Errorf("bound name %q, want %q", got, bound)
	}
	fd, err := unix.Open(link, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var asked []string
	decide := func(name string) syscall.Errno {
		asked = append(asked, name)
		if name == bound {
			return syscall.EACCES
		}
		return 0
	}
	if e := checkBoundName(fd, link, decide); e != syscall.EACCES || len(asked) != 1 || asked[0] != bound {
		t.Errorf("checkBoundName = %v, decided %q; want EACCES from deciding %q", e, asked, bound)
	}
	// With one link left, the name used is the only one: nothing more to decide.
	os.Remove(bound)
	asked = nil
	if e := checkBoundName(fd, link, decide); e != 0 || len(asked) != 0 {
		t.Errorf("one link: checkBoundName = %v, decided %q; want 0 and nothing decided", e, asked)
	}
	// No socket bound there any more: the kernel refuses the connect itself.
	if _, err := boundName(st.Dev, st.Ino+1); err != errNoBoundName {
		t.Errorf("unbound inode: %v, want errNoBoundName", err)
	}
}
