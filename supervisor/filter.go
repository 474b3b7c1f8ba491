package supervisor

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// FilterOptions says which side doors the filter traps besides connect.
type FilterOptions struct {
	// TrapSends traps the calls that can carry a destination without
	// connect: sendto with an address or MSG_FASTOPEN, sendmsg, sendmmsg.
	TrapSends bool
	// AllowIOUring lets io_uring_setup through; its connect and send run
	// in kernel workers that seccomp never sees.
	AllowIOUring bool
	// AllowRaw lets raw and packet sockets be created.
	AllowRaw bool
	// AllowUserns lets the command create user namespaces (unshare,
	// clone and setns with CLONE_NEWUSER, and clone3), in which it could
	// mount over the paths that UNIX rules name.
	AllowUserns bool
}

// compatArches are the other ABIs an x86_64 process can use. Their calls
// are trapped too, so that the supervisor can refuse them with a log line
// instead of letting them through unsupervised.
func compatArches() []seccomp.ScmpArch {
	if runtime.GOARCH == "amd64" {
		return []seccomp.ScmpArch{seccomp.ArchX86, seccomp.ArchX32}
	}
	return nil
}

// buildFilter returns the classic BPF program that the child stub loads:
// connect (and the other doors) notify the supervisor, everything else
// runs untouched at the cost of the filter alone.
func buildFilter(opts FilterOptions) ([]unix.SockFilter, error) {
	native, err := seccomp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("native arch: %w", err)
	}
	f, err := newArchFilter(native)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	if err := addRules(f, native, FilterRules(opts)); err != nil {
		return nil, err
	}
	// The compat ABIs get their own filters, merged in: their calls are
	// trapped without conditions, because i386's socketcall(2) keeps the
	// arguments in memory where no condition can look, and the
	// supervisor refuses them all.
	for _, arch := range compatArches() {
		cf, err := newArchFilter(arch)
		if err != nil {
			return nil, err
		}
		if err := addRules(cf, arch, compatRules(opts)); err != nil {
			cf.Release()
			return nil, err
		}
		if err := f.Merge(cf); err != nil {
			cf.Release()
			return nil, fmt.Errorf("merge the %v filter: %w", arch, err)
		}
	}
	return exportBPF(f)
}

// newArchFilter is an empty allow-all filter for arch alone. An ABI no
// filter lists is killed, never allowed.
func newArchFilter(arch seccomp.ScmpArch) (*seccomp.ScmpFilter, error) {
	f, err := seccomp.NewFilter(seccomp.ActAllow)
	if err != nil {
		return nil, fmt.Errorf("new seccomp filter: %w", err)
	}
	native, err := seccomp.GetNativeArch()
	if err != nil {
		f.Release()
		return nil, fmt.Errorf("native arch: %w", err)
	}
	if arch != native {
		if err := f.AddArch(arch); err != nil {
			f.Release()
			return nil, fmt.Errorf("add arch %v: %w", arch, err)
		}
		if err := f.RemoveArch(native); err != nil {
			f.Release()
			return nil, fmt.Errorf("remove arch %v: %w", native, err)
		}
	}
	if err := f.SetBadArchAction(seccomp.ActKillProcess); err != nil {
		f.Release()
		return nil, fmt.Errorf("set bad arch action: %w", err)
	}
	return f, nil
}

// FilterRule is one rule of the filter, as data. buildFilter hands the
// rules to libseccomp, and `connvisor profile` writes the same rules as an
// OCI seccomp profile for container runtimes, so the two cannot drift.
type FilterRule struct {
	Syscall string
	// Errno, when not zero, makes the filter itself fail the call with
	// it; otherwise the call notifies the supervisor.
	Errno syscall.Errno
	// Args must all hold for the rule to apply (none: always).
	Args []ArgCondition
}

// ArgCondition compares one argument register of a call.
type ArgCondition struct {
	Index uint
	Op    ArgOp
	// Mask applies to ArgMaskedEqual only: (arg & Mask) == Value.
	Mask  uint64
	Value uint64
}

// ArgOp is how an ArgCondition compares.
type ArgOp uint8

const (
	ArgEqual ArgOp = iota + 1
	ArgNotEqual
	ArgMaskedEqual
)

// FilterRules returns the rules of the filter for the native ABI: the
// calls that notify the supervisor (connect and the other doors), with
// the argument conditions that keep the rest in the kernel, and the calls
// the filter fails by itself (clone3).
func FilterRules(opts FilterOptions) []FilterRule {
	rules := []FilterRule{{Syscall: "connect"}}
	if !opts.AllowIOUring {
		rules = append(rules, FilterRule{Syscall: "io_uring_setup"})
	}
	if opts.TrapSends {
		rules = append(rules, sendRules()...)
	}
	if !opts.AllowRaw {
		rules = append(rules, rawSocketRules()...)
	}
	rules = append(rules, sockoptRules()...)
	if !opts.AllowUserns {
		rules = append(rules, usernsRules()...)
	}
	return rules
}

// compatRules traps every call of a compat ABI that can reach a
// destination or hide one from seccomp, without conditions: the
// supervisor refuses them all.
func compatRules(opts FilterOptions) []FilterRule {
	var rules []FilterRule
	for _, name := range []string{"connect", "sendto", "sendmsg", "sendmmsg", "io_uring_setup", "setsockopt"} {
		rules = append(rules, FilterRule{Syscall: name})
	}
	rules = append(rules, rawSocketRules()...)
	if !opts.AllowUserns {
		rules = append(rules, usernsRules()...)
	}
	return append(rules, SocketcallRules()...)
}

// SocketcallRules trap i386's socketcall(2) for each call that can reach
// a destination. socketcall keeps the socket's type and the call's
// arguments in memory, so raw sockets and sends without a destination
// cannot be told apart: libseccomp writes no socketcall rule for a rule
// with argument conditions, and these trap the whole call instead.
// Architectures without socketcall ignore them.
func SocketcallRules() []FilterRule {
	var rules []FilterRule
	for _, call := range []uint64{sysSocket, sysConnect, sysSetsockopt, sysSendto, sysSendmsg, sysSendmmsg} {
		rules = append(rules, FilterRule{Syscall: "socketcall", Args: []ArgCondition{{Index: 0, Op: ArgEqual, Value: call}}})
	}
	return rules
}

// socketcall(2) call numbers (include/uapi/linux/net.h).
const (
	sysSocket     = 1
	sysConnect    = 3
	sysSendto     = 11
	sysSetsockopt = 14
	sysSendmsg    = 16
	sysSendmmsg   = 20
)

// addRules adds rules to f. libseccomp takes each call's number as the
// native arch's and translates it for each arch of the filter (i386's
// connect becomes socketcall(SYS_CONNECT) and connect); a call the arch
// does not have (socketcall on x86_64) adds nothing.
func addRules(f *seccomp.ScmpFilter, arch seccomp.ScmpArch, rules []FilterRule) error {
	for _, r := range rules {
		nr, err := seccomp.GetSyscallFromName(r.Syscall)
		if err != nil {
			return fmt.Errorf("syscall %s on %v: %w", r.Syscall, arch, err)
		}
		act := seccomp.ActNotify
		if r.Errno != 0 {
			act = seccomp.ActErrno.SetReturnCode(int16(r.Errno))
		}
		conds := make([]seccomp.ScmpCondition, 0, len(r.Args))
		for _, a := range r.Args {
			c, err := a.condition()
			if err != nil {
				return fmt.Errorf("rule for %s on %v: %w", r.Syscall, arch, err)
			}
			conds = append(conds, c)
		}
		if len(conds) == 0 {
			err = f.AddRule(nr, act)
		} else {
			err = f.AddRuleConditional(nr, act, conds)
		}
		if err != nil {
			return fmt.Errorf("rule for %s on %v: %w", r.Syscall, arch, err)
		}
	}
	return nil
}

func (a ArgCondition) condition() (seccomp.ScmpCondition, error) {
	switch a.Op {
	case ArgEqual:
		return seccomp.MakeCondition(a.Index, seccomp.CompareEqual, a.Value)
	case ArgNotEqual:
		return seccomp.MakeCondition(a.Index, seccomp.CompareNotEqual, a.Value)
	case ArgMaskedEqual:
		return seccomp.MakeCondition(a.Index, seccomp.CompareMaskedEqual, a.Mask, a.Value)
	}
	return seccomp.ScmpCondition{}, fmt.Errorf("argument %d: unknown comparison %d", a.Index, a.Op)
}

// rawSocketRules trap the creation of raw and packet sockets: they
// reach the network without connect, with addresses no port rule can
// match (a raw IP datagram names no port). socket(AF_INET, SOCK_PACKET) is
// a packet socket too: __sock_create turns it into AF_PACKET for old
// programs.
//
// Netlink sockets are SOCK_RAW too but talk to the kernel only (getaddrinfo
// and getifaddrs need them), so the rule names the IP families.
func rawSocketRules() []FilterRule {
	var rules []FilterRule
	for _, family := range []uint64{unix.AF_INET, unix.AF_INET6} {
		types := []uint64{unix.SOCK_RAW}
		if family == unix.AF_INET {
			// Only PF_INET is turned into a packet socket; an IPv6
			// SOCK_PACKET fails as natively.
			types = append(types, unix.SOCK_PACKET)
		}
		for _, typ := range types {
			rules = append(rules, FilterRule{Syscall: "socket", Args: []ArgCondition{
				intArg(0, family),
				{Index: 1, Op: ArgMaskedEqual, Mask: sockTypeMask, Value: typ},
			}})
		}
	}
	return append(rules, FilterRule{Syscall: "socket", Args: []ArgCondition{intArg(0, unix.AF_PACKET)}})
}

// intArg is a condition "argument arg, read as an int, equals v". The
// kernel reads socket's domain, setsockopt's level and option name and
// the like as ints, so only the low 32 bits count: a plain 64-bit
// comparison would let (1<<32)|AF_INET slip past a rule for AF_INET.
func intArg(arg uint, v uint64) ArgCondition {
	return ArgCondition{Index: arg, Op: ArgMaskedEqual, Mask: lowInt, Value: v}
}

// lowInt masks an argument register to the int the kernel reads from it.
const lowInt = 0xffffffff

// sockTypeMask keeps the type of socket(2)'s type argument, without
// SOCK_NONBLOCK and SOCK_CLOEXEC (SOCK_TYPE_MASK).
const sockTypeMask = 0xf

// sendRules trap only the sends that can carry a destination: a sendto
// with a NULL address and no MSG_FASTOPEN is decided in the filter.
func sendRules() []FilterRule {
	return []FilterRule{
		{Syscall: "sendto", Args: []ArgCondition{{Index: 4, Op: ArgNotEqual, Value: 0}}},
		{Syscall: "sendto", Args: []ArgCondition{{Index: 3, Op: ArgMaskedEqual, Mask: unix.MSG_FASTOPEN, Value: unix.MSG_FASTOPEN}}},
		{Syscall: "sendmsg"},
		{Syscall: "sendmmsg"},
	}
}

const (
	setsockoptLevelArg  = 1
	setsockoptOptionArg = 2
)

// sockopt is one (level, option name) pair of setsockopt(2).
type sockopt struct {
	level, name int32
	why         string // the reason a refusal logs
}

// trappedSockopts are the socket options that send packets somewhere the
// connect or send that the policy decided does not name. They are refused
// on their level and name alone, which the filter sees in registers: the
// option's value is in memory, where another thread could change it after
// a check, and a sticky option outlives any check of the calls after it.
var trappedSockopts = []sockopt{
	// SCTP's connectx takes a list of addresses in memory
	// (net/sctp/socket.c): an implicit connect that connect's rule never
	// sees.
	{unix.IPPROTO_SCTP, 107, "SCTP connectx"}, // SCTP_SOCKOPT_CONNECTX_OLD
	{unix.IPPROTO_SCTP, 110, "SCTP connectx"}, // SCTP_SOCKOPT_CONNECTX
	{unix.IPPROTO_SCTP, 111, "SCTP connectx"}, // SCTP_SOCKOPT_CONNECTX3
	// IPv4 options: loose and strict source routes (LSRR, SSRR) send
	// every packet through hosts of the program's choosing, which forward
	// it on. Record-route and timestamp options go in the same buffer and
	// are refused with them.
	{unix.IPPROTO_IP, unix.IP_OPTIONS, "IP_OPTIONS (source routing)"},
	// IPv6 routing header, sticky (do_ipv6_setsockopt accepts type 2 and
	// type 4, segment routing, without privilege): the packet goes to the
	// first segment and on to the rest.
	{unix.IPPROTO_IPV6, unix.IPV6_RTHDR, "IPV6_RTHDR (source routing)"},
	// RFC 2292's sticky options: a buffer of control messages, which may
	// hold a routing header (and a next hop).
	{unix.IPPROTO_IPV6, unix.IPV6_2292PKTOPTIONS, "IPV6_2292PKTOPTIONS (source routing)"},
}

// sockoptWhy is the refusal reason for a trapped setsockopt, decided on
// the registers only (the int the kernel reads); "" for one the filter
// should not have trapped.
func sockoptWhy(level, name uint64) string {
	for _, o := range trappedSockopts {
		if int32(uint32(level)) == o.level && int32(uint32(name)) == o.name {
			return o.why
		}
	}
	return ""
}

// usernsRules trap the calls that create or enter a user namespace: in
// one, an unprivileged program can mount a tmpfs over a directory that a
// UNIX path rule allows and bind-mount a denied socket into it, or
// bind-mount any binary over the path an exe= rule names. unshare and
// clone take their flags in a register; setns takes a namespace type (0:
// any). clone3 keeps its flags in memory, where the filter cannot look,
// so it fails with ENOSYS in the filter, as container runtimes do: the C
// libraries then fall back to clone (glibc's __clone_internal, and Go and
// musl use clone anyway).
func usernsRules() []FilterRule {
	newUser := func(arg uint) []ArgCondition {
		return []ArgCondition{{Index: arg, Op: ArgMaskedEqual, Mask: unix.CLONE_NEWUSER, Value: unix.CLONE_NEWUSER}}
	}
	return []FilterRule{
		{Syscall: "unshare", Args: newUser(0)},
		{Syscall: "clone", Args: newUser(0)},
		{Syscall: "setns", Args: newUser(1)},
		{Syscall: "setns", Args: []ArgCondition{intArg(1, 0)}},
		{Syscall: "clone3", Errno: unix.ENOSYS},
	}
}

// sockoptRules trap only the setsockopt calls of trappedSockopts; every
// other setsockopt stays in the filter.
func sockoptRules() []FilterRule {
	rules := make([]FilterRule, 0, len(trappedSockopts))
	for _, o := range trappedSockopts {
		rules = append(rules, FilterRule{Syscall: "setsockopt", Args: []ArgCondition{
			intArg(setsockoptLevelArg, uint64(o.level)),
			intArg(setsockoptOptionArg, uint64(o.name)),
		}})
	}
	return rules
}

// exportBPF takes the compiled program out of libseccomp (2.5 has no
// in-memory export) through a memfd.
func exportBPF(f *seccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("connvisor-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	file := os.NewFile(uintptr(fd), "connvisor-bpf")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("export BPF: %w", err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind BPF: %w", err)
	}
	raw, err := io.ReadAll(file)
	if err != nil {
		return nil, fmt.Errorf("read BPF: %w", err)
	}
	return decodeBPF(raw)
}

// decodeBPF turns struct sock_filter bytes into instructions.
func decodeBPF(raw []byte) ([]unix.SockFilter, error) {
	const insnSize = 8
	if len(raw) == 0 || len(raw)%insnSize != 0 || len(raw)/insnSize > 4096 {
		return nil, fmt.Errorf("BPF program of %d bytes is not a whole number of instructions (1..4096)", len(raw))
	}
	prog := make([]unix.SockFilter, len(raw)/insnSize)
	for i := range prog {
		b := raw[i*insnSize:]
		prog[i] = unix.SockFilter{
			Code: uint16(b[0]) | uint16(b[1])<<8,
			Jt:   b[2],
			Jf:   b[3],
			K:    uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24,
		}
	}
	return prog, nil
}

// encodeBPF is the inverse of decodeBPF, for handing the program to the stub.
func encodeBPF(prog []unix.SockFilter) []byte {
	out := make([]byte, 0, len(prog)*8)
	for _, in := range prog {
		out = append(out, byte(in.Code), byte(in.Code>>8), in.Jt, in.Jf,
			byte(in.K), byte(in.K>>8), byte(in.K>>16), byte(in.K>>24))
	}
	return out
}

// FilterProgram returns the BPF program the child stub loads for opts, so
// that tests can run it against synthetic seccomp_data of every ABI (the
// compat ABIs cannot be exercised by a real process on every kernel).
func FilterProgram(opts FilterOptions) ([]unix.SockFilter, error) { return buildFilter(opts) }
