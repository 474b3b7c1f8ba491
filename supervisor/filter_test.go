package supervisor_test

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/testutil"
	"github.com/connvisor/connvisor/supervisor"
)

// TestFilterCompatABIs runs the very BPF program the child stub loads
// (supervisor.FilterProgram) against synthetic seccomp_data for every ABI an
// x86_64 process can use, as runc does: a real process cannot exercise x32
// on kernels without it, nor i386 where ia32 emulation is off.
// golang.org/x/net/bpf's VM runs it (testutil.RunSeccomp, which explains
// the byte order of the data). test/attacks tries the same doors with real
// processes.
func TestFilterCompatABIs(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("compat ABIs are an x86_64 matter")
	}
	const (
		x32Bit                                       = 0x40000000
		retAllow                                     = 0x7fff0000
		retUserNotif                                 = 0x7fc00000
		retKillProc                                  = 0x80000000
		retErrno                                     = 0x00050000
		i386Socketcall                               = 102
		sysConnect, sysSocket, sysSendto, sysSendmsg = 3, 1, 11, 16
	)
	prog, err := supervisor.FilterProgram(supervisor.FilterOptions{TrapSends: true})
	if err != nil {
		t.Fatal(err)
	}
	x64, i386 := uint32(unix.AUDIT_ARCH_X86_64), uint32(unix.AUDIT_ARCH_I386)
	cases := []struct {
		name string
		arch uint32
		nr   uint32
		args [6]uint64
		want uint32
	}{
		{"x86_64 connect", x64, 42, [6]uint64{3, 0x1000, 16}, retUserNotif},
		{"i386 socketcall(SYS_CONNECT)", i386, i386Socketcall, [6]uint64{sysConnect, 0x1000}, retUserNotif},
		{"i386 connect (362)", i386, 362, [6]uint64{3, 0x1000, 16}, retUserNotif},
		{"x32 connect (42|bit30)", x64, 42 | x32Bit, [6]uint64{3, 0x1000, 16}, retUserNotif},
		{"x86_64 io_uring_setup", x64, 425, [6]uint64{4, 0x1000}, retUserNotif},
		{"i386 io_uring_setup", i386, 425, [6]uint64{4, 0x1000}, retUserNotif},
		{"x32 io_uring_setup", x64, 425 | x32Bit, [6]uint64{4, 0x1000}, retUserNotif},
		{"x86_64 sendto with an address", x64, 44, [6]uint64{3, 0x1000, 1, 0, 0x2000, 16}, retUserNotif},
		{"x86_64 sendto with MSG_FASTOPEN", x64, 44, [6]uint64{3, 0x1000, 1, unix.MSG_FASTOPEN, 0, 0}, retUserNotif},
		{"x86_64 sendto without an address", x64, 44, [6]uint64{3, 0x1000, 1, 0, 0, 0}, retAllow},
		{"x86_64 sendmsg", x64, 46, [6]uint64{3, 0x1000}, retUserNotif},
		{"x86_64 sendmmsg", x64, 307, [6]uint64{3, 0x1000, 2}, retUserNotif},
		{"i386 socketcall(SYS_SENDTO)", i386, i386Socketcall, [6]uint64{sysSendto, 0x1000}, retUserNotif},
		{"i386 socketcall(SYS_SENDMSG)", i386, i386Socketcall, [6]uint64{sysSendmsg, 0x1000}, retUserNotif},
		{"i386 sendto (369) with an address", i386, 369, [6]uint64{3, 0x1000, 1, 0, 0x2000, 16}, retUserNotif},
		{"i386 sendmsg (370)", i386, 370, [6]uint64{3, 0x1000}, retUserNotif},
		{"i386 sendmmsg (345)", i386, 345, [6]uint64{3, 0x1000, 2}, retUserNotif},
		{"x32 sendmsg (518)", x64, 518 | x32Bit, [6]uint64{3, 0x1000}, retUserNotif},
		{"x32 sendmmsg (538)", x64, 538 | x32Bit, [6]uint64{3, 0x1000, 2}, retUserNotif},
		{"x32 sendto (44) with an address", x64, 44 | x32Bit, [6]uint64{3, 0x1000, 1, 0, 0x2000, 16}, retUserNotif},
		{"x86_64 getpid", x64, 39, [6]uint64{}, retAllow},
		// socketcall keeps socket(2)'s type in memory, so raw sockets
		// cannot be told apart there: i386 socket creation is refused.
		{"i386 socketcall(SYS_SOCKET)", i386, i386Socketcall, [6]uint64{sysSocket, 0x1000}, retUserNotif},
		{"x86_64 socket raw", x64, 41, [6]uint64{unix.AF_INET, unix.SOCK_RAW | unix.SOCK_CLOEXEC, unix.IPPROTO_UDP}, retUserNotif},
		{"x86_64 socket packet", x64, 41, [6]uint64{unix.AF_PACKET, unix.SOCK_DGRAM, 0}, retUserNotif},
		{"x86_64 socket tcp", x64, 41, [6]uint64{unix.AF_INET, unix.SOCK_STREAM | unix.SOCK_NONBLOCK, 0}, retAllow},
		{"x86_64 socket icmp ping", x64, 41, [6]uint64{unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP}, retAllow},
		{"unknown arch (aarch64) connect", unix.AUDIT_ARCH_AARCH64, 203, [6]uint64{3, 0x1000, 16}, retKillProc},
		// Issue 12: the kernel reads these arguments as ints, so the
		// filter must compare their low 32 bits only.
		{"x86_64 socket (1<<32)|AF_INET raw", x64, 41, [6]uint64{1<<32 | unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_UDP}, retUserNotif},
		{"x86_64 socket (1<<32)|AF_PACKET", x64, 41, [6]uint64{1<<32 | unix.AF_PACKET, unix.SOCK_DGRAM, 0}, retUserNotif},
		{"x86_64 socket AF_INET SOCK_PACKET", x64, 41, [6]uint64{unix.AF_INET, unix.SOCK_PACKET, 0x300}, retUserNotif},
		{"x86_64 setsockopt (1<<32)|SCTP connectx", x64, 54, [6]uint64{3, 1<<32 | unix.IPPROTO_SCTP, 1<<32 | 110, 0x1000, 16}, retUserNotif},
		{"x86_64 setsockopt IP_OPTIONS", x64, 54, [6]uint64{3, unix.IPPROTO_IP, unix.IP_OPTIONS, 0x1000, 8}, retUserNotif},
		{"x86_64 setsockopt (1<<32)|IPV6 RTHDR", x64, 54, [6]uint64{3, 1<<32 | unix.IPPROTO_IPV6, unix.IPV6_RTHDR, 0x1000, 8}, retUserNotif},
		{"x86_64 setsockopt IPV6_2292PKTOPTIONS", x64, 54, [6]uint64{3, unix.IPPROTO_IPV6, unix.IPV6_2292PKTOPTIONS, 0x1000, 8}, retUserNotif},
		{"x86_64 setsockopt IP_TTL", x64, 54, [6]uint64{3, unix.IPPROTO_IP, unix.IP_TTL, 0x1000, 4}, retAllow},
		{"x86_64 setsockopt IPV6_2292RTHDR (a receive flag)", x64, 54, [6]uint64{3, unix.IPPROTO_IPV6, unix.IPV6_2292RTHDR, 0x1000, 4}, retAllow},
		{"x86_64 setsockopt SO_REUSEADDR", x64, 54, [6]uint64{3, unix.SOL_SOCKET, unix.SO_REUSEADDR, 0x1000, 4}, retAllow},
		{"x86_64 unshare CLONE_NEWUSER", x64, 272, [6]uint64{unix.CLONE_NEWUSER | unix.CLONE_NEWNS}, retUserNotif},
		{"x86_64 unshare CLONE_NEWNS", x64, 272, [6]uint64{unix.CLONE_NEWNS}, retAllow},
		{"x86_64 clone CLONE_NEWUSER", x64, 56, [6]uint64{1<<32 | unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, retUserNotif},
		{"x86_64 clone a thread", x64, 56, [6]uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND | unix.CLONE_FS | unix.CLONE_FILES}, retAllow},
		{"x86_64 setns any type", x64, 308, [6]uint64{5, 0}, retUserNotif},
		{"x86_64 setns user", x64, 308, [6]uint64{5, unix.CLONE_NEWUSER}, retUserNotif},
		{"x86_64 setns net", x64, 308, [6]uint64{5, unix.CLONE_NEWNET}, retAllow},
		{"x86_64 clone3", x64, 435, [6]uint64{0x1000, 88}, retErrno},
		{"i386 unshare CLONE_NEWUSER", i386, 310, [6]uint64{unix.CLONE_NEWUSER}, retUserNotif},
		{"i386 clone3", i386, 435, [6]uint64{0x1000, 88}, retErrno},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := testutil.RunSeccomp(prog, testutil.SeccompData(c.nr, c.arch, c.args))
			if err != nil {
				t.Fatal(err)
			}
			if got&0xffff0000 == c.want {
				if c.want == retErrno && got&0xffff != uint32(unix.ENOSYS) {
					t.Errorf("errno %d, want ENOSYS: the C library falls back to clone on ENOSYS only", got&0xffff)
				}
				return
			}
			if c.want == retUserNotif && got&0xffff0000 == retAllow {
				t.Fatalf("OPEN DOOR: the filter ALLOWs %s (%#x) without notifying; %s", c.name, got, openFilterWhy[c.name])
			}
			t.Errorf("the filter returns %#x, want %#x", got, c.want)
		})
	}
}

// TestFilterAllowUserns: with --allow-userns, user namespaces and clone3
// are left to the kernel.
func TestFilterAllowUserns(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("syscall numbers are x86_64's")
	}
	prog, err := supervisor.FilterProgram(supervisor.FilterOptions{TrapSends: true, AllowUserns: true})
	if err != nil {
		t.Fatal(err)
	}
	x64 := uint32(unix.AUDIT_ARCH_X86_64)
	for name, c := range map[string]struct {
		nr   uint32
		args [6]uint64
	}{
		"unshare CLONE_NEWUSER": {272, [6]uint64{unix.CLONE_NEWUSER}},
		"clone CLONE_NEWUSER":   {56, [6]uint64{unix.CLONE_NEWUSER}},
		"clone3":                {435, [6]uint64{0x1000, 88}},
		"setns any":             {308, [6]uint64{5, 0}},
	} {
		got, err := testutil.RunSeccomp(prog, testutil.SeccompData(c.nr, x64, c.args))
		if err != nil {
			t.Fatal(err)
		}
		if got != 0x7fff0000 {
			t.Errorf("%s: the filter returns %#x, want ALLOW", name, got)
		}
	}
}

// openFilterWhy diagnoses the filter gaps found so far.
var openFilterWhy = map[string]string{
	"i386 socketcall(SYS_SENDTO)": "sendto's rules carry argument conditions (address != 0, MSG_FASTOPEN), which libseccomp cannot check through socketcall (the arguments are in memory), so it writes no socketcall rule for them: an i386 sendto with a destination goes out unsupervised (TestDoors/i386-socketcall-sendto proves it on a real process). Trap socketcall(SYS_SENDTO) unconditionally (an extra rule for the x86 arch: socketcall with arg0 == 11), or refuse every compat call in the filter",
}
