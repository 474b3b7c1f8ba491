package testutil

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The VM loads each word of SeccompData as the kernel would: the low half
// of an argument at its offset, the high half 4 bytes on.
func TestSeccompDataByteOrder(t *testing.T) {
	data := SeccompData(42, unix.AUDIT_ARCH_X86_64, [6]uint64{0x1122334455667788})
	for _, c := range []struct {
		off  uint32
		want uint32
	}{{0, 42}, {4, unix.AUDIT_ARCH_X86_64}, {16, 0x55667788}, {20, 0x11223344}} {
		prog := []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: c.off},
			{Code: unix.BPF_RET | unix.BPF_A},
		}
		got, err := RunSeccomp(prog, data)
		if err != nil || got != c.want {
			t.Errorf("load at %d: %#x, %v; want %#x", c.off, got, err, c.want)
		}
	}
}

// What seccomp refuses, RunSeccomp refuses, though the VM would run it.
func TestRunSeccompRefuses(t *testing.T) {
	data := SeccompData(42, unix.AUDIT_ARCH_X86_64, [6]uint64{})
	for name, in := range map[string]unix.SockFilter{
		"unaligned load": {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 2},
		"half-word load": {Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 0},
		"load past data": {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 64},
		"indirect load":  {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_IND, K: 0},
		"undecodable op": {Code: 0xffff},
	} {
		prog := []unix.SockFilter{in, {Code: unix.BPF_RET | unix.BPF_K, K: 0x7fff0000}}
		if got, err := RunSeccomp(prog, data); err == nil {
			t.Errorf("%s: ran, returned %#x", name, got)
		}
	}
}

// Code is what a shell reports: 128+N for a death by signal N.
func TestRunExitCode(t *testing.T) {
	for script, want := range map[string]int{"exit 0": 0, "exit 3": 3, "kill -TERM $$": 143} {
		if r := Run(t, "sh", "-c", script); r.Code != want {
			t.Errorf("%s: %v, want exit %d", script, r, want)
		}
	}
}
