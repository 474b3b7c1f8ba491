package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/internal/testutil"
	"github.com/connvisor/connvisor/supervisor"
)

const (
	retAllow  = 0x7fff0000
	retNotify = 0x7fc00000
	retErrno  = 0x00050000
	x32Bit    = 0x40000000
)

// compileProfile builds the filter a runtime builds from the profile, the
// way runc does with libseccomp: every listed architecture, one rule per
// name, conditions as given, rules that repeat the default action skipped.
func compileProfile(t *testing.T, raw []byte) []unix.SockFilter {
	t.Helper()
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	def := ociAction(t, p.DefaultAction, p.DefaultErrnoRet)
	f, err := seccomp.NewFilter(def)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	for _, a := range p.Architectures {
		arch, err := seccomp.GetArchFromString(strings.ToLower(strings.TrimPrefix(string(a), "SCMP_ARCH_")))
		if err != nil {
			t.Fatalf("arch %s: %v", a, err)
		}
		if err := f.AddArch(arch); err != nil && !errors.Is(err, seccomp.ErrSyscallDoesNotExist) {
			t.Fatalf("add arch %s: %v", a, err)
		}
	}
	for _, r := range p.Syscalls {
		act := ociAction(t, r.Action, r.ErrnoRet)
		if act == def {
			continue
		}
		var conds []seccomp.ScmpCondition
		for _, a := range r.Args {
			op := map[specs.LinuxSeccompOperator]seccomp.ScmpCompareOp{
				specs.OpEqualTo: seccomp.CompareEqual, specs.OpNotEqual: seccomp.CompareNotEqual,
				specs.OpMaskedEqual: seccomp.CompareMaskedEqual,
			}[a.Op]
			var c seccomp.ScmpCondition
			if a.Op == specs.OpMaskedEqual {
				c, err = seccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
			} else {
				c, err = seccomp.MakeCondition(a.Index, op, a.Value)
			}
			if err != nil {
				t.Fatal(err)
			}
			conds = append(conds, c)
		}
		for _, name := range r.Names {
			nr, err := seccomp.GetSyscallFromName(name)
			if err != nil {
				continue // runc skips calls this libseccomp does not know
			}
			if len(conds) == 0 {
				err = f.AddRule(nr, act)
			} else {
				err = f.AddRuleConditional(nr, act, conds)
			}
			if err != nil {
				t.Fatalf("rule %s: %v", name, err)
			}
		}
	}
	tmp, err := os.CreateTemp(t.TempDir(), "bpf")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	if err := f.ExportBPF(tmp); err != nil {
		t.Fatal(err)
	}
	tmp.Seek(0, io.SeekStart)
	b, _ := io.ReadAll(tmp)
	prog := make([]unix.SockFilter, len(b)/8)
	for i := range prog {
		prog[i] = unix.SockFilter{Code: uint16(b[i*8]) | uint16(b[i*8+1])<<8, Jt: b[i*8+2], Jf: b[i*8+3],
			K: uint32(b[i*8+4]) | uint32(b[i*8+5])<<8 | uint32(b[i*8+6])<<16 | uint32(b[i*8+7])<<24}
	}
	return prog
}

func ociAction(t *testing.T, a specs.LinuxSeccompAction, errno *uint) seccomp.ScmpAction {
	switch a {
	case specs.ActAllow:
		return seccomp.ActAllow
	case specs.ActNotify:
		return seccomp.ActNotify
	case specs.ActErrno:
		e := int16(unix.EPERM)
		if errno != nil {
			e = int16(*errno)
		}
		return seccomp.ActErrno.SetReturnCode(e)
	case specs.ActKillProcess:
		return seccomp.ActKillProcess
	}
	t.Fatalf("action %s", a)
	return 0
}

type bpfCase struct {
	name string
	arch uint32
	nr   uint32
	args [6]uint64
}

// nativeCases are x86_64 calls on either side of every rule of the filter.
func nativeCases() []bpfCase {
	x := uint32(unix.AUDIT_ARCH_X86_64)
	c := func(name string, nr uint32, args ...uint64) bpfCase {
		var a [6]uint64
		copy(a[:], args)
		return bpfCase{name, x, nr, a}
	}
	cases := []bpfCase{
		c("connect", 42, 3, 0x1000, 16),
		c("sendto with an address", 44, 3, 0x1000, 1, 0, 0x2000, 16),
		c("sendto MSG_FASTOPEN", 44, 3, 0x1000, 1, unix.MSG_FASTOPEN),
		c("sendto without an address", 44, 3, 0x1000, 1, unix.MSG_DONTWAIT),
		c("sendmsg", 46, 3, 0x1000),
		c("sendmmsg", 307, 3, 0x1000, 2),
		c("io_uring_setup", 425, 4, 0x1000),
		c("socket tcp", 41, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC),
		c("socket unix", 41, unix.AF_UNIX, unix.SOCK_DGRAM),
		c("socket raw", 41, unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK, 17),
		c("socket raw6", 41, unix.AF_INET6, unix.SOCK_RAW),
		c("socket (1<<32)|AF_INET raw", 41, 1<<32|unix.AF_INET, unix.SOCK_RAW),
		c("socket SOCK_PACKET", 41, unix.AF_INET, unix.SOCK_PACKET),
		c("socket packet", 41, unix.AF_PACKET, unix.SOCK_DGRAM),
		c("socket netlink raw", 41, unix.AF_NETLINK, unix.SOCK_RAW),
		c("setsockopt IP_OPTIONS", 54, 3, unix.IPPROTO_IP, unix.IP_OPTIONS),
		c("setsockopt (1<<32) IPV6_RTHDR", 54, 3, 1<<32|unix.IPPROTO_IPV6, 1<<32|unix.IPV6_RTHDR),
		c("setsockopt SCTP connectx", 54, 3, unix.IPPROTO_SCTP, 110),
		c("setsockopt SO_REUSEADDR", 54, 3, unix.SOL_SOCKET, unix.SO_REUSEADDR),
		c("unshare CLONE_NEWUSER", 272, unix.CLONE_NEWUSER|unix.CLONE_NEWNS),
		c("unshare CLONE_NEWNS", 272, unix.CLONE_NEWNS),
		c("clone CLONE_NEWUSER", 56, unix.CLONE_NEWUSER),
		c("clone thread", 56, unix.CLONE_VM|unix.CLONE_THREAD),
		c("setns any", 308, 5, 0),
		c("setns user", 308, 5, unix.CLONE_NEWUSER),
		c("setns net", 308, 5, unix.CLONE_NEWNET),
		c("clone3", 435, 0x1000, 88),
		c("getpid", 39),
	}
	return cases
}

// TestProfileMatchesFilter: on the native ABI, the filter a runtime builds
// from the profile answers every call exactly as the filter `connvisor run`
// loads: the two come from one rule list.
func TestProfileMatchesFilter(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the cases use x86_64's call numbers")
	}
	raw, warnings, err := Profile(ProfileOptions{ListenerPath: "/run/x.sock"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Profile: %v %v", err, warnings)
	}
	fromProfile := compileProfile(t, raw)
	runFilter, err := supervisor.FilterProgram(profileFilterOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range nativeCases() {
		data := testutil.SeccompData(c.nr, c.arch, c.args)
		got, err := testutil.RunSeccomp(fromProfile, data)
		if err != nil {
			t.Fatal(err)
		}
		want, err := testutil.RunSeccomp(runFilter, data)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: the profile's filter returns %#x, run's %#x", c.name, got, want)
		}
	}
}

// TestProfileCompatABIs: every ABI the profile lists traps what can reach
// a destination; the agent refuses the compat ones.
func TestProfileCompatABIs(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the cases use x86_64's call numbers")
	}
	raw, _, err := Profile(ProfileOptions{ListenerPath: "/run/x.sock"})
	if err != nil {
		t.Fatal(err)
	}
	prog := compileProfile(t, raw)
	i386, x64 := uint32(unix.AUDIT_ARCH_I386), uint32(unix.AUDIT_ARCH_X86_64)
	for _, c := range []bpfCase{
		{"i386 connect", i386, 362, [6]uint64{3, 0x1000, 16}},
		{"i386 socketcall(SYS_CONNECT)", i386, 102, [6]uint64{3, 0x1000}},
		{"i386 socketcall(SYS_SENDTO)", i386, 102, [6]uint64{11, 0x1000}},
		{"i386 socketcall(SYS_SOCKET)", i386, 102, [6]uint64{1, 0x1000}},
		{"i386 socketcall(SYS_SETSOCKOPT)", i386, 102, [6]uint64{14, 0x1000}},
		{"i386 sendto with an address", i386, 369, [6]uint64{3, 0x1000, 1, 0, 0x2000, 16}},
		{"i386 sendmsg", i386, 370, [6]uint64{3, 0x1000}},
		{"x32 connect", x64, 42 | x32Bit, [6]uint64{3, 0x1000, 16}},
		{"x32 sendmsg", x64, 518 | x32Bit, [6]uint64{3, 0x1000}},
		{"aarch64 connect", unix.AUDIT_ARCH_AARCH64, 203, [6]uint64{3, 0x1000, 16}},
		{"arm connect", unix.AUDIT_ARCH_ARM, 283, [6]uint64{3, 0x1000, 16}},
	} {
		got, err := testutil.RunSeccomp(prog, testutil.SeccompData(c.nr, c.arch, c.args))
		if err != nil {
			t.Fatal(err)
		}
		if got != retNotify {
			t.Errorf("%s: the profile's filter returns %#x, want NOTIFY", c.name, got)
		}
	}
}

// dockerLikeBase is a default-deny profile in Docker's format, as the
// runtimes' default profiles are: an allow list, an archMap, a conditional
// rule, and a refusal of its own.
const dockerLikeBase = `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
  "syscalls": [
    {"names": ["connect", "sendto", "sendmsg", "sendmmsg", "socket", "setsockopt", "socketcall", "getpid", "clone3"], "action": "SCMP_ACT_ALLOW", "comment": "network"},
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}], "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["io_uring_setup"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
  ]
}`

// TestProfileMergesBase: merged into a default-deny base, the profile keeps
// the base's rules, fields and format, hands the calls to the agent, and
// says which conditional rules the base's unconditional allows override.
func TestProfileMergesBase(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the cases use x86_64's call numbers")
	}
	raw, warnings, err := Profile(ProfileOptions{ListenerPath: "/run/x.sock", Metadata: "web", Base: []byte(dockerLikeBase)})
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out["archMap"] == nil || out["architectures"] != nil {
		t.Errorf("Docker's archMap should be kept and no architectures added: %v %v", out["archMap"], out["architectures"])
	}
	if out["listenerPath"] != "/run/x.sock" || out["listenerMetadata"] != "web" {
		t.Errorf("listener fields: %v %v", out["listenerPath"], out["listenerMetadata"])
	}
	if !strings.Contains(string(raw), `"excludes"`) || !strings.Contains(string(raw), `"comment"`) {
		t.Errorf("the base's own fields were dropped:\n%s", raw)
	}
	joined := strings.Join(warnings, "\n")
	if !strings.Contains(joined, "allows setsockopt unconditionally") || strings.Contains(joined, "allows socket unconditionally") {
		t.Errorf("want a warning for setsockopt only, got %q", joined)
	}
	// The runtime (Docker's loader) expands archMap into architectures.
	var p map[string]any
	json.Unmarshal(raw, &p)
	var arches []any
	for _, m := range p["archMap"].([]any) {
		m := m.(map[string]any)
		arches = append(arches, m["architecture"])
		arches = append(arches, m["subArchitectures"].([]any)...)
	}
	delete(p, "archMap")
	p["architectures"] = arches
	if strings.Contains(fmt.Sprint(arches), "SCMP_ARCH_X86 ") || !strings.Contains(joined, "i386") {
		t.Errorf("i386 should be left out, with a warning: %v %q", arches, joined)
	}
	expanded, _ := json.Marshal(p)
	prog := compileProfile(t, expanded)
	x := uint32(unix.AUDIT_ARCH_X86_64)
	for _, c := range []struct {
		name string
		nr   uint32
		args [6]uint64
		want uint32
	}{
		{"connect", 42, [6]uint64{3, 0x1000, 16}, retNotify},
		{"sendto with an address", 44, [6]uint64{3, 0x1000, 1, 0, 0x2000, 16}, retNotify},
		{"sendto without an address", 44, [6]uint64{3, 0x1000, 1, 0, 0, 0}, retAllow},
		{"sendmsg", 46, [6]uint64{3, 0x1000}, retNotify},
		{"getpid", 39, [6]uint64{}, retAllow},
		{"mount (the base's default)", 165, [6]uint64{}, retErrno | 1},
		{"io_uring_setup (the base's refusal)", 425, [6]uint64{}, retErrno | 1},
		{"personality(0) (the base's condition)", 135, [6]uint64{0}, retAllow},
		{"personality(8) (the base's condition)", 135, [6]uint64{8}, retErrno | 1},
		{"clone thread (the base's condition)", 56, [6]uint64{unix.CLONE_VM | unix.CLONE_THREAD}, retAllow},
		{"clone CLONE_NEWUSER", 56, [6]uint64{unix.CLONE_NEWUSER}, retNotify},
		{"clone3 (ENOSYS for the C library's fallback)", 435, [6]uint64{}, retErrno | uint32(unix.ENOSYS)},
		{"socket tcp (the base's allow)", 41, [6]uint64{unix.AF_INET, unix.SOCK_STREAM | unix.SOCK_CLOEXEC}, retAllow},
		{"socket udp6", 41, [6]uint64{unix.AF_INET6, unix.SOCK_DGRAM}, retAllow},
		{"socket unix", 41, [6]uint64{unix.AF_UNIX, unix.SOCK_STREAM}, retAllow},
		{"socket netlink raw", 41, [6]uint64{unix.AF_NETLINK, unix.SOCK_RAW}, retAllow},
		{"socket raw", 41, [6]uint64{unix.AF_INET, unix.SOCK_RAW}, retNotify},
		{"socket raw6", 41, [6]uint64{unix.AF_INET6, unix.SOCK_RAW | unix.SOCK_NONBLOCK}, retNotify},
		{"socket (1<<32)|AF_INET raw", 41, [6]uint64{1<<32 | unix.AF_INET, unix.SOCK_RAW}, retNotify},
		{"socket SOCK_PACKET", 41, [6]uint64{unix.AF_INET, unix.SOCK_PACKET}, retNotify},
		{"socket packet", 41, [6]uint64{unix.AF_PACKET, unix.SOCK_DGRAM}, retNotify},
		{"setsockopt (the base's allow)", 54, [6]uint64{3, unix.SOL_SOCKET, unix.SO_REUSEADDR}, retAllow},
	} {
		got, err := testutil.RunSeccomp(prog, testutil.SeccompData(c.nr, x, c.args))
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
	if got, _ := testutil.RunSeccomp(prog, testutil.SeccompData(42|x32Bit, x, [6]uint64{3, 0x1000, 16})); got != retNotify {
		t.Errorf("x32 connect: %#x, want NOTIFY", got)
	}
}

// TestProfileMergesOCIBase: an OCI base with i386 listed and socket calls
// allowed compiles (no clash of i386's multiplexed rules) without i386.
func TestProfileMergesOCIBase(t *testing.T) {
	base := `{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
	  "syscalls": [{"names": ["socket", "sendto", "setsockopt", "bind"], "action": "SCMP_ACT_ALLOW"}]}`
	raw, warnings, err := Profile(ProfileOptions{ListenerPath: "/x", Base: []byte(base)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), `"SCMP_ARCH_X86"`) || !strings.Contains(strings.Join(warnings, " "), "i386") {
		t.Errorf("i386 should be left out, with a warning:\n%s\n%q", raw, warnings)
	}
	compileProfile(t, raw) // fails the test on a clash
}
