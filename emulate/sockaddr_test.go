package emulate

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"

	"github.com/connvisor/connvisor/policy"
)

func inet4(ip [4]byte, port uint16) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint16(b, syscall.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[4:], ip[:])
	return b
}

func inet6(ip [16]byte, port uint16, withScope bool) []byte {
	n := 24
	if withScope {
		n = 28
	}
	b := make([]byte, n)
	binary.NativeEndian.PutUint16(b, syscall.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[8:], ip[:])
	return b
}

func unixAddr(name string) []byte {
	b := make([]byte, 2+len(name))
	binary.NativeEndian.PutUint16(b, syscall.AF_UNIX)
	copy(b[2:], name)
	return b
}

func netlink(pid, groups uint32) []byte {
	b := make([]byte, 12)
	binary.NativeEndian.PutUint16(b, syscall.AF_NETLINK)
	binary.NativeEndian.PutUint32(b[4:], pid)
	binary.NativeEndian.PutUint32(b[8:], groups)
	return b
}

// TestDecodeSendName: family 0 is "unspecified" to connect only; a send
// reads it the way the socket's protocol does (issue 12).
func TestDecodeSendName(t *testing.T) {
	unspec4 := inet4([4]byte{10, 0, 0, 1}, 53)
	unspec4[0], unspec4[1] = 0, 0
	unspec6 := inet6(netip.MustParseAddr("2001:db8::1").As16(), 53, true)
	unspec6[0], unspec6[1] = 0, 0
	tests := []struct {
		name        string
		raw         []byte
		domain, typ int
		want        policy.Dest
	}{
		{"udp4 takes it as IPv4", unspec4, syscall.AF_INET, syscall.SOCK_DGRAM,
			policy.Dest{Family: syscall.AF_INET, Addr: netip.MustParseAddr("10.0.0.1"), Port: 53}},
		{"raw4 takes it as IPv4", unspec4, syscall.AF_INET, syscall.SOCK_RAW,
			policy.Dest{Family: syscall.AF_INET, Addr: netip.MustParseAddr("10.0.0.1"), Port: 53}},
		{"raw6 takes it as IPv6", unspec6, syscall.AF_INET6, syscall.SOCK_RAW,
			policy.Dest{Family: syscall.AF_INET6, Addr: netip.MustParseAddr("2001:db8::1"), Port: 53}},
		{"unknown type on IPv6 as raw6", unspec6, syscall.AF_INET6, -1,
			policy.Dest{Family: syscall.AF_INET6, Addr: netip.MustParseAddr("2001:db8::1"), Port: 53}},
		{"udp6 drops it (connected peer)", unspec6, syscall.AF_INET6, syscall.SOCK_DGRAM,
			policy.Dest{Family: syscall.AF_UNSPEC}},
		{"packet ignores the family", unspec4, syscall.AF_PACKET, syscall.SOCK_DGRAM,
			policy.Dest{Family: syscall.AF_PACKET}},
		{"packet with an inet family", inet4([4]byte{127, 0, 0, 1}, 1), syscall.AF_PACKET, syscall.SOCK_RAW,
			policy.Dest{Family: syscall.AF_PACKET}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa := NewSockaddr(tt.raw)
			var d policy.Dest
			sa.DecodeSendNameOn(&d, tt.domain, tt.typ)
			if d != tt.want {
				t.Errorf("got %+v, want %+v", d, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	loop6 := netip.IPv6Loopback().As16()
	mapped := netip.MustParseAddr("::ffff:10.1.2.3").As16()
	tests := []struct {
		name      string
		raw       []byte
		malformed bool
		want      policy.Dest
	}{
		{"inet", inet4([4]byte{127, 0, 0, 1}, 8080), false,
			policy.Dest{Family: syscall.AF_INET, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080}},
		{"inet with trailing bytes", append(inet4([4]byte{10, 0, 0, 1}, 1), 0, 0, 0), false,
			policy.Dest{Family: syscall.AF_INET, Addr: netip.MustParseAddr("10.0.0.1"), Port: 1}},
		{"inet too short", inet4([4]byte{1, 2, 3, 4}, 80)[:15], true, policy.Dest{Family: syscall.AF_INET}},
		{"inet6 rfc2133 length", inet6(loop6, 443, false), false,
			policy.Dest{Family: syscall.AF_INET6, Addr: netip.IPv6Loopback(), Port: 443}},
		{"inet6 with scope", inet6(loop6, 443, true), false,
			policy.Dest{Family: syscall.AF_INET6, Addr: netip.IPv6Loopback(), Port: 443}},
		{"inet6 mapped kept as given", inet6(mapped, 53, true), false,
			policy.Dest{Family: syscall.AF_INET6, Addr: netip.AddrFrom16(mapped), Port: 53}},
		{"inet6 too short", inet6(loop6, 1, false)[:23], true, policy.Dest{Family: syscall.AF_INET6}},
		{"unix path", unixAddr("/run/x.sock"), false, policy.Dest{Family: syscall.AF_UNIX, Path: "/run/x.sock"}},
		{"unix path nul terminated", unixAddr("/run/x.sock\x00junk"), false, policy.Dest{Family: syscall.AF_UNIX, Path: "/run/x.sock"}},
		{"unix relative", unixAddr("sock"), false, policy.Dest{Family: syscall.AF_UNIX, Path: "sock"}},
		{"unix abstract keeps nuls", unixAddr("\x00name\x00x"), false, policy.Dest{Family: syscall.AF_UNIX, Abstract: true, Path: "name\x00x"}},
		{"unix family only", unixAddr(""), true, policy.Dest{Family: syscall.AF_UNIX, Unnamed: true}},
		{"unix too long", unixAddr(string(make([]byte, 109))), true, policy.Dest{Family: syscall.AF_UNIX}},
		{"unspec", []byte{0, 0}, false, policy.Dest{Family: syscall.AF_UNSPEC}},
		{"netlink to the kernel", netlink(0, 0), false, policy.Dest{Family: syscall.AF_NETLINK, Kernel: true}},
		{"netlink to a process", netlink(4242, 0), false, policy.Dest{Family: syscall.AF_NETLINK}},
		{"netlink to a group", netlink(0, 1), false, policy.Dest{Family: syscall.AF_NETLINK}},
		{"netlink too short", netlink(0, 0)[:8], false, policy.Dest{Family: syscall.AF_NETLINK}},
		{"empty", nil, true, policy.Dest{}},
		{"one byte", []byte{2}, true, policy.Dest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa := NewSockaddr(tt.raw)
			if got := sa.Malformed(); got != tt.malformed {
				t.Errorf("Malformed() = %v, want %v", got, tt.malformed)
			}
			var d policy.Dest
			sa.Decode(&d)
			if d != tt.want {
				t.Errorf("Decode = %+v, want %+v", d, tt.want)
			}
		})
	}
}

func TestReadSockaddrLengths(t *testing.T) {
	tests := []struct {
		addrlen uint64
		ptr     uint64
		want    syscall.Errno
	}{
		{addrlen: 129, ptr: 1, want: syscall.EINVAL},
		{addrlen: 1 << 31, ptr: 1, want: syscall.EINVAL},             // negative as an int
		{addrlen: 0xffffffff, ptr: 1, want: syscall.EINVAL},          // -1
		{addrlen: 16 | 1<<32, ptr: 0, want: syscall.EFAULT},          // high bits ignored, NULL
		{addrlen: 16, ptr: 0, want: syscall.EFAULT},                  // NULL
		{addrlen: 16, ptr: 0xffffffffffff0000, want: syscall.EFAULT}, // kernel space
		{addrlen: 0, ptr: 0, want: 0},                                // no copy at all
	}
	for _, tt := range tests {
		_, errno, err := ReadSockaddr(syscall.Getpid(), tt.ptr, tt.addrlen)
		if err != nil {
			t.Fatalf("addrlen %#x ptr %#x: %v", tt.addrlen, tt.ptr, err)
		}
		if errno != tt.want {
			t.Errorf("addrlen %#x ptr %#x: errno %v, want %v", tt.addrlen, tt.ptr, errno, tt.want)
		}
	}
}

func FuzzDecodeSockaddr(f *testing.F) {
	f.Add(inet4([4]byte{127, 0, 0, 1}, 80))
	f.Add(inet6(netip.IPv6Loopback().As16(), 80, true))
	f.Add(unixAddr("/tmp/x"))
	f.Add(unixAddr("\x00abs"))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		sa := NewSockaddr(raw)
		var d policy.Dest
		sa.Decode(&d)
		if sa.Len() > MaxSockaddrLen {
			t.Fatalf("copy longer than sockaddr_storage: %d", sa.Len())
		}
		if !sa.Malformed() {
			switch d.Family {
			case syscall.AF_INET:
				if !d.Addr.Is4() {
					t.Fatalf("well-formed AF_INET decoded to %v", d.Addr)
				}
			case syscall.AF_INET6:
				if !d.Addr.Is6() {
					t.Fatalf("well-formed AF_INET6 decoded to %v", d.Addr)
				}
			case syscall.AF_UNIX:
				if d.Path == "" && !d.Abstract {
					// "\x00"-only pathnames decode as abstract; an empty
					// pathname cannot be well formed.
					t.Fatalf("well-formed AF_UNIX with no name: %q", raw)
				}
			}
		}
	})
}
