package testutil

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompDataLen is sizeof(struct seccomp_data): nr, arch,
// instruction_pointer and six arguments.
const seccompDataLen = 64

// SeccompData lays out struct seccomp_data (include/uapi/linux/seccomp.h)
// for RunSeccomp.
//
// The kernel hands a filter seccomp_data in host order (little-endian
// here), but golang.org/x/net/bpf's VM loads in network order
// (big-endian), as socket filters do. Seccomp only lets a filter load
// aligned 32-bit words (seccomp_check_filter, checked again by
// RunSeccomp), so each word is written here in big-endian order where the
// kernel would have its little-endian bytes: the VM then loads the values
// the kernel would. The low half of a 64-bit argument stays at the lower
// offset, where libseccomp's little-endian filters look for it.
func SeccompData(nr, arch uint32, args [6]uint64) []byte {
	b := make([]byte, seccompDataLen)
	word := func(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
	word64 := func(off int, v uint64) { word(off, uint32(v)); word(off+4, uint32(v>>32)) }
	word(0, nr)
	word(4, arch)
	word64(8, 0x401000) // instruction_pointer: filters do not look at it
	for i, a := range args {
		word64(16+8*i, a)
	}
	return b
}

// RunSeccomp runs a seccomp filter program on data (from SeccompData) with
// golang.org/x/net/bpf's VM and returns the filter's verdict
// (SECCOMP_RET_*). It refuses what seccomp refuses and the VM would run
// anyway: an instruction it cannot decode, a load that is not an aligned
// 32-bit word inside seccomp_data.
func RunSeccomp(prog []unix.SockFilter, data []byte) (uint32, error) {
	raw := make([]bpf.RawInstruction, len(prog))
	for i, in := range prog {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		for i, in := range insns {
			if r, isRaw := in.(bpf.RawInstruction); isRaw {
				return 0, fmt.Errorf("pc %d: instruction %#x cannot be decoded", i, r.Op)
			}
		}
	}
	for i, in := range insns {
		switch in := in.(type) {
		case bpf.LoadAbsolute:
			if in.Size != 4 || in.Off%4 != 0 || int(in.Off)+4 > len(data) {
				return 0, fmt.Errorf("pc %d: load of %d bytes at %d: seccomp loads aligned words of seccomp_data only", i, in.Size, in.Off)
			}
		case bpf.LoadIndirect, bpf.LoadMemShift:
			return 0, fmt.Errorf("pc %d: %v is not allowed in seccomp", i, in)
		}
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return 0, fmt.Errorf("the VM refuses the program: %w", err)
	}
	ret, err := vm.Run(data)
	if err != nil {
		return 0, fmt.Errorf("run the program: %w", err)
	}
	return uint32(ret), nil
}
