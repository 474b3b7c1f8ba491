package emulate

import (
	"net/netip"
	"testing"

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
			ResolveUnspecified(&d, fd)
			if d.Addr != netip.MustParseAddr(tt.want) {
				t.Errorf("got %v, want %v", d.Addr, tt.want)
			}
		})
	}
}
