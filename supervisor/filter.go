package supervisor

import (
	"fmt"
	"io"
	"os"
	"runtime"

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
	add := ruleAdder(f, native)
	if err := add("connect"); err != nil {
		return nil, err
	}
	if !opts.AllowIOUring {
		if err := add("io_uring_setup"); err != nil {
			return nil, err
		}
	}
	if opts.TrapSends {
		if err := addSendRules(add); err != nil {
			return nil, err
		}
	}
	if !opts.AllowRaw {
		if err := addRawSocketRules(add); err != nil {
			return nil, err
		}
	}
	if err := addSCTPConnectxRules(add); err != nil {
		return nil, err
	}
	// The compat ABIs get their own filters, merged in: their calls are
	// trapped without conditions, because i386's socketcall(2) keeps the
	// arguments in memory where no condition can look, and the
	// supervisor refuses them all.
	for _, arch := range compatArches() {
		cf, err := compatFilter(arch)
		if err != nil {
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

// ruleAdder adds notify rules to f by the call's name. libseccomp takes
// the number as the native arch's and translates it for each arch of the
// filter (i386's connect becomes socketcall(SYS_CONNECT) and connect).
func ruleAdder(f *seccomp.ScmpFilter, arch seccomp.ScmpArch) addRuleFunc {
	return func(name string, conds ...seccomp.ScmpCondition) error {
		nr, err := seccomp.GetSyscallFromName(name)
		if err != nil {
			return fmt.Errorf("syscall %s on %v: %w", name, arch, err)
		}
		if len(conds) == 0 {
			err = f.AddRule(nr, seccomp.ActNotify)
		} else {
			err = f.AddRuleConditional(nr, seccomp.ActNotify, conds)
		}
		if err != nil {
			return fmt.Errorf("rule for %s on %v: %w", name, arch, err)
		}
		return nil
	}
}

// compatFilter traps every call of a compat ABI that can reach a
// destination or hide one from seccomp.
func compatFilter(arch seccomp.ScmpArch) (*seccomp.ScmpFilter, error) {
	f, err := newArchFilter(arch)
	if err != nil {
		return nil, err
	}
	add := ruleAdder(f, arch)
	for _, name := range []string{"connect", "sendto", "sendmsg", "sendmmsg", "io_uring_setup", "setsockopt"} {
		if err := add(name); err != nil {
			f.Release()
			return nil, err
		}
	}
	if err := addRawSocketRules(add); err != nil {
		f.Release()
		return nil, err
	}
	if arch == seccomp.ArchX86 {
		// socketcall(2) keeps the socket's type in memory, so raw sockets
		// cannot be told apart: every socket it creates is refused, with
		// the calls that can reach a destination.
		for _, call := range []uint64{sysSocket, sysConnect, sysSetsockopt, sysSendto, sysSendmsg, sysSendmmsg} {
			c, err := seccomp.MakeCondition(0, seccomp.CompareEqual, call)
			if err != nil {
				f.Release()
				return nil, fmt.Errorf("socketcall condition: %w", err)
			}
			if err := add("socketcall", c); err != nil {
				f.Release()
				return nil, err
			}
		}
	}
	return f, nil
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

// addRawSocketRules traps the creation of raw and packet sockets: they
// reach the network without connect, with addresses no port rule can
// match (a raw IP datagram names no port).
//
// Netlink sockets are SOCK_RAW too but talk to the kernel only (getaddrinfo
// and getifaddrs need them), so the rule names the IP families.
func addRawSocketRules(add addRuleFunc) error {
	raw, err := seccomp.MakeCondition(1, seccomp.CompareMaskedEqual, sockTypeMask, unix.SOCK_RAW)
	if err != nil {
		return fmt.Errorf("socket condition: %w", err)
	}
	for _, family := range []uint64{unix.AF_INET, unix.AF_INET6} {
		inFamily, err := seccomp.MakeCondition(0, seccomp.CompareEqual, family)
		if err != nil {
			return fmt.Errorf("socket condition: %w", err)
		}
		if err := add("socket", inFamily, raw); err != nil {
			return err
		}
	}
	packet, err := seccomp.MakeCondition(0, seccomp.CompareEqual, unix.AF_PACKET)
	if err != nil {
		return fmt.Errorf("socket condition: %w", err)
	}
	return add("socket", packet)
}

// sockTypeMask keeps the type of socket(2)'s type argument, without
// SOCK_NONBLOCK and SOCK_CLOEXEC.
const sockTypeMask = 0xf

type addRuleFunc func(name string, conds ...seccomp.ScmpCondition) error

// addSendRules traps only the sends that can carry a destination: a
// sendto with a NULL address and no MSG_FASTOPEN is decided in the filter.
func addSendRules(add addRuleFunc) error {
	withAddr, err := seccomp.MakeCondition(4, seccomp.CompareNotEqual, 0)
	if err != nil {
		return fmt.Errorf("sendto condition: %w", err)
	}
	fastOpen, err := seccomp.MakeCondition(3, seccomp.CompareMaskedEqual, unix.MSG_FASTOPEN, unix.MSG_FASTOPEN)
	if err != nil {
		return fmt.Errorf("sendto condition: %w", err)
	}
	if err := add("sendto", withAddr); err != nil {
		return err
	}
	if err := add("sendto", fastOpen); err != nil {
		return err
	}
	if err := add("sendmsg"); err != nil {
		return err
	}
	return add("sendmmsg")
}

// SCTP's connectx goes through setsockopt with the addresses in memory
// (net/sctp/socket.c): an implicit connect that connect's rule never sees.
const (
	solSCTP             = 132 // IPPROTO_SCTP
	sctpConnectxOld     = 107 // SCTP_SOCKOPT_CONNECTX_OLD
	sctpConnectx        = 110 // SCTP_SOCKOPT_CONNECTX
	sctpConnectx3       = 111 // SCTP_SOCKOPT_CONNECTX3
	setsockoptLevelArg  = 1
	setsockoptOptionArg = 2
)

// addSCTPConnectxRules traps only setsockopt(IPPROTO_SCTP, CONNECTX*);
// every other setsockopt stays in the filter.
func addSCTPConnectxRules(add addRuleFunc) error {
	level, err := seccomp.MakeCondition(setsockoptLevelArg, seccomp.CompareEqual, solSCTP)
	if err != nil {
		return fmt.Errorf("setsockopt condition: %w", err)
	}
	for _, opt := range []uint64{sctpConnectxOld, sctpConnectx, sctpConnectx3} {
		name, err := seccomp.MakeCondition(setsockoptOptionArg, seccomp.CompareEqual, opt)
		if err != nil {
			return fmt.Errorf("setsockopt condition: %w", err)
		}
		if err := add("setsockopt", level, name); err != nil {
			return err
		}
	}
	return nil
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
