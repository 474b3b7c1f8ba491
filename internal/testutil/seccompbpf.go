package testutil

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// A seccomp-subset classic BPF interpreter, so that tests can run a filter
// program against synthetic seccomp_data of every ABI (golang.org/x/net/bpf
// is not a dependency of the module).

// SeccompData lays out struct seccomp_data in native (little) endian.
func SeccompData(nr, arch uint32, args [6]uint64) []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], nr)
	binary.LittleEndian.PutUint32(b[4:], arch)
	binary.LittleEndian.PutUint64(b[8:], 0x401000) // instruction pointer
	for i, a := range args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// RunSeccompBPF interprets the classic BPF subset that seccomp accepts
// (seccomp_check_filter): 32-bit absolute loads of seccomp_data, immediate
// and scratch loads and stores, ALU, jumps and returns.
func RunSeccompBPF(prog []unix.SockFilter, data []byte) (uint32, error) {
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		k := in.K
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if int(k)+4 > len(data) || k%4 != 0 {
				return 0, fmt.Errorf("pc %d: load at %d", pc, k)
			}
			a = binary.LittleEndian.Uint32(data[k:])
		case unix.BPF_LD | unix.BPF_W | unix.BPF_LEN:
			a = uint32(len(data))
		case unix.BPF_LDX | unix.BPF_W | unix.BPF_LEN:
			x = uint32(len(data))
		case unix.BPF_LD | unix.BPF_IMM:
			a = k
		case unix.BPF_LDX | unix.BPF_IMM:
			x = k
		case unix.BPF_LD | unix.BPF_MEM:
			a = mem[k%16]
		case unix.BPF_LDX | unix.BPF_MEM:
			x = mem[k%16]
		case unix.BPF_ST:
			mem[k%16] = a
		case unix.BPF_STX:
			mem[k%16] = x
		case unix.BPF_MISC | unix.BPF_TAX:
			x = a
		case unix.BPF_MISC | unix.BPF_TXA:
			a = x
		case unix.BPF_RET | unix.BPF_K:
			return k, nil
		case unix.BPF_RET | unix.BPF_A:
			return a, nil
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(k)
		default:
			switch in.Code & 0x07 {
			case unix.BPF_ALU:
				op := uint32(k)
				if in.Code&unix.BPF_X != 0 {
					op = x
				}
				switch in.Code & 0xf0 {
				case unix.BPF_ADD:
					a += op
				case unix.BPF_SUB:
					a -= op
				case unix.BPF_MUL:
					a *= op
				case unix.BPF_DIV:
					if op == 0 {
						return 0, nil
					}
					a /= op
				case unix.BPF_AND:
					a &= op
				case unix.BPF_OR:
					a |= op
				case unix.BPF_XOR:
					a ^= op
				case unix.BPF_LSH:
					a <<= op
				case unix.BPF_RSH:
					a >>= op
				case unix.BPF_NEG:
					a = -a
				default:
					return 0, fmt.Errorf("pc %d: ALU op %#x", pc, in.Code)
				}
			case unix.BPF_JMP:
				op := k
				if in.Code&unix.BPF_X != 0 {
					op = x
				}
				var cond bool
				switch in.Code & 0xf0 {
				case unix.BPF_JEQ:
					cond = a == op
				case unix.BPF_JGT:
					cond = a > op
				case unix.BPF_JGE:
					cond = a >= op
				case unix.BPF_JSET:
					cond = a&op != 0
				default:
					return 0, fmt.Errorf("pc %d: jump %#x", pc, in.Code)
				}
				if cond {
					pc += int(in.Jt)
				} else {
					pc += int(in.Jf)
				}
			default:
				return 0, fmt.Errorf("pc %d: instruction %#x not allowed in seccomp", pc, in.Code)
			}
		}
	}
	return 0, fmt.Errorf("fell off the end of the program")
}
