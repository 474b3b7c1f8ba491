package emulate

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/policy"
)

func TestResolveUnspecified(t *testing.T) {
	tests := []struct {
		name   string
		domain int
		bind   unix.Sockaddr
		dest   string
		want   string
	}{
		{"v4 unbound goes to loopback", unix.AF_INET, nil, "0.0.0.0", "127.0.0.1"},
		{"v4 bound goes to the bound address", unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 2}}, "0.0.0.0", "127.0.0.2"},
		{"v4 wildcard-bound goes to loopback", unix.AF_INET, &unix.SockaddrInet4{}, "0.0.0.0", "127.0.0.1"},
		{"v6 any goes to loopback", unix.AF_INET6, nil, "::", "::1"},
		{"v4-mapped any on v6", unix.AF_INET6, nil, "::ffff:0.0.0.0", "::ffff:127.0.0.1"},
		{"specified addresses stay", unix.AF_INET, nil, "10.1.2.3", "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd, err := unix.Socket(tt.domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if tt.bind != nil {
				if err := unix.Bind(fd, tt.bind); err != nil {
					t.Fatal(err)
				}
			}
			d := policy.Dest{Addr: netip.MustParseAddr(tt.dest), Port: 80}
			ResolveName(&d, nil, fd, UseSend)
			if d.Addr != netip.MustParseAddr(tt.want) {
				t.Errorf("got %v, want %v", d.Addr, tt.want)
			}
		})
	}
}

// TestResolveNameMatchesKernel connects real UDP sockets to unspecified
// addresses and checks that ResolveName predicts the peer the kernel
// chose, and writes that very address into the name it returns (issue 12:
// "::" on a socket bound to ::ffff:127.0.0.1 goes to 127.0.0.1).
func TestResolveNameMatchesKernel(t *testing.T) {
	mapped := func(a string) *unix.SockaddrInet6 {
		return &unix.SockaddrInet6{Addr: netip.MustParseAddr(a).As16()}
	}
	tests := []struct {
		name   string
		domain int
		bind   unix.Sockaddr
		dest   string
	}{
		{"v4 unbound", unix.AF_INET, nil, "0.0.0.0"},
		{"v4 bound 127.0.0.2", unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 2}}, "0.0.0.0"},
		{"v6 :: unbound", unix.AF_INET6, nil, "::"},
		{"v6 :: bound ::ffff:127.0.0.1", unix.AF_INET6, mapped("::ffff:127.0.0.1"), "::"},
		{"v6 :: bound ::ffff:127.0.0.3", unix.AF_INET6, mapped("::ffff:127.0.0.3"), "::"},
		{"v6 ::ffff:0.0.0.0 unbound", unix.AF_INET6, nil, "::ffff:0.0.0.0"},
		{"v6 ::ffff:0.0.0.0 bound ::ffff:127.0.0.3", unix.AF_INET6, mapped("::ffff:127.0.0.3"), "::ffff:0.0.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := func() int {
				fd, err := unix.Socket(tt.domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { unix.Close(fd) })
				if tt.bind != nil {
					if err := unix.Bind(fd, tt.bind); err != nil {
						t.Skipf("bind %v: %v", tt.bind, err)
					}
				}
				return fd
			}
			a := netip.MustParseAddr(tt.dest)
			var raw []byte
			if tt.domain == unix.AF_INET {
				raw = inet4(a.As4(), 4242)
			} else {
				raw = inet6(a.As16(), 4242, true)
			}
			native := socket()
			if _, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(native), uintptr(unsafe.Pointer(&raw[0])), uintptr(len(raw))); e != 0 {
				t.Skipf("native connect: %v", e)
			}
			peer, err := unix.Getpeername(native)
			if err != nil {
				t.Fatal(err)
			}
			var kernel netip.Addr
			switch p := peer.(type) {
			case *unix.SockaddrInet4:
				kernel = netip.AddrFrom4(p.Addr)
			case *unix.SockaddrInet6:
				kernel = netip.AddrFrom16(p.Addr)
			}
			sa := NewSockaddr(raw)
			var d policy.Dest
			sa.Decode(&d)
			out := ResolveName(&d, &sa, socket(), UseConnect)
			if d.Addr.Unmap() != kernel.Unmap() {
				t.Errorf("decided %v, the kernel connected to %v", d.Addr, kernel)
			}
			var w policy.Dest
			out.Decode(&w)
			if w.Addr != d.Addr || w.Port != 4242 || out.Len() != sa.Len() {
				t.Errorf("the name to connect is %v port %d (len %d), want %v port 4242 (len %d)", w.Addr, w.Port, out.Len(), d.Addr, sa.Len())
			}
		})
	}
}

// The socket's own options and identity, as the supervisor asks for them
// on its duplicate.
func TestSocketOptions(t *testing.T) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	other, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)

	a, ok1 := FileOf(fd)
	b, ok2 := FileOf(dup)
	c, ok3 := FileOf(other)
	if !ok1 || !ok2 || !ok3 || a != b || a == c {
		t.Fatalf("FileOf: %v %v %v", a, b, c)
	}
	if !TargetHolds(unix.Gettid(), uint64(fd), dup) || TargetHolds(unix.Gettid(), uint64(other), dup) {
		t.Fatal("TargetHolds does not tell the same socket from another")
	}

	if got := SendTimeout(fd); got != 0 {
		t.Fatalf("SendTimeout without one: %v", got)
	}
	tv := unix.Timeval{Sec: 1, Usec: 500000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO_OLD, &tv); err != nil {
		t.Fatal(err)
	}
	if got := SendTimeout(dup); got != 1500*time.Millisecond {
		t.Fatalf("SendTimeout: %v", got)
	}
	if n, err := SendBuffer(dup); err != nil || n <= 0 {
		t.Fatalf("SendBuffer: %d, %v", n, err)
	}

	info, errno, err := Inspect(dup)
	if err != nil || errno != 0 || !info.ConnectBlocks() {
		t.Fatalf("a blocking stream socket: %+v %v %v", info, errno, err)
	}
	dgram, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dgram)
	info, _, _ = Inspect(dgram)
	if info.ConnectBlocks() || info.NonBlock {
		t.Fatalf("a datagram socket before ReadFlags: %+v", info)
	}
	if err := info.ReadFlags(dgram); err != nil || !info.NonBlock {
		t.Fatalf("ReadFlags: %+v, %v", info, err)
	}
}
