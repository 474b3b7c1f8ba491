package agent

import (
	"encoding/json"
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/supervisor"
)

// ProfileOptions say where the runtime hands the listener and what the
// profile merges into.
type ProfileOptions struct {
	// ListenerPath is the agent's socket.
	ListenerPath string
	// Metadata goes to the agent with every hand-off (listenerMetadata):
	// the name of a policy file in the agent's --policy-dir.
	Metadata string
	// Base is a profile to merge into (the runtime's default profile, in
	// the OCI linux.seccomp format or Docker's, whose extra fields are
	// kept); nil: allow everything else.
	Base []byte
}

// profileArches are the ABIs the profile lists: every one a process on an
// x86_64 or arm64 node can use, so one profile serves a mixed fleet. The
// agent refuses the compat ones (i386, x32, arm) with EPERM, as `run` does.
var profileArches = []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchARM}

// multiplexed are the calls connvisor traps that i386 makes through
// socketcall(2) (and socketcall itself).
var multiplexed = map[string]bool{"socket": true, "connect": true, "setsockopt": true, "sendto": true,
	"sendmsg": true, "sendmmsg": true, "socketcall": true}

// profileFilterOptions: a container under the agent gets the safe
// defaults of `run` (sends, raw sockets, io_uring and user namespaces
// trapped).
var profileFilterOptions = supervisor.FilterOptions{TrapSends: true}

// ProfileRules are the rules of the profile: the supervisor filter's own
// (which the runtime applies to every listed architecture) and the i386
// socketcall rules (architectures without socketcall ignore them).
func ProfileRules() []supervisor.FilterRule {
	return append(supervisor.FilterRules(profileFilterOptions), supervisor.SocketcallRules()...)
}

// Profile returns the linux.seccomp object, indented JSON, and warnings
// about rules of the base that limit what it traps.
func Profile(opts ProfileOptions) ([]byte, []string, error) {
	base := map[string]json.RawMessage{}
	if len(opts.Base) > 0 {
		if err := json.Unmarshal(opts.Base, &base); err != nil {
			return nil, nil, fmt.Errorf("base profile: %w", err)
		}
		// A whole config.json: take its linux.seccomp.
		if lin, ok := base["linux"]; ok {
			var l map[string]json.RawMessage
			if err := json.Unmarshal(lin, &l); err != nil || l["seccomp"] == nil {
				return nil, nil, fmt.Errorf("base profile: a config.json without linux.seccomp")
			}
			base = map[string]json.RawMessage{}
			if err := json.Unmarshal(l["seccomp"], &base); err != nil {
				return nil, nil, fmt.Errorf("base profile: linux.seccomp: %w", err)
			}
		}
	}
	defaultAction := specs.ActAllow
	if raw, ok := base["defaultAction"]; ok {
		if err := json.Unmarshal(raw, &defaultAction); err != nil {
			return nil, nil, fmt.Errorf("base profile: defaultAction: %w", err)
		}
	}
	var baseRules []map[string]json.RawMessage
	if raw, ok := base["syscalls"]; ok {
		if err := json.Unmarshal(raw, &baseRules); err != nil {
			return nil, nil, fmt.Errorf("base profile: syscalls: %w", err)
		}
	}
	ours := ProfileRules()
	unconditional, conditional := map[string]bool{}, map[string]bool{}
	for _, r := range ours {
		if len(r.Args) == 0 {
			unconditional[r.Syscall] = true
		} else {
			conditional[r.Syscall] = true
		}
	}
	var warnings []string
	skip := map[string]bool{} // our conditional rules a base rule overrides
	// i386Conflict: the base allows some socketcall(2) calls connvisor
	// traps. libseccomp writes one i386 rule per multiplexed call, without
	// the arguments, so an allow and a notify of the same call clash (the
	// runtime fails with EEXIST) or the allow wins: i386 is left out.
	i386Conflict := false
	var merged []any
	for i, r := range baseRules {
		var names []string
		if raw, ok := r["names"]; ok {
			if err := json.Unmarshal(raw, &names); err != nil {
				return nil, nil, fmt.Errorf("base profile: syscalls[%d].names: %w", i, err)
			}
		} else if raw, ok := r["name"]; ok { // Docker's older single name
			var n string
			if err := json.Unmarshal(raw, &n); err != nil {
				return nil, nil, fmt.Errorf("base profile: syscalls[%d].name: %w", i, err)
			}
			names = []string{n}
			delete(r, "name")
		}
		var action specs.LinuxSeccompAction
		json.Unmarshal(r["action"], &action)
		_, hasArgs := r["args"]
		if hasArgs {
			var args []json.RawMessage
			json.Unmarshal(r["args"], &args)
			hasArgs = len(args) > 0
		}
		permits := action == specs.ActAllow || action == specs.ActLog
		keep := names[:0:0]
		for _, n := range names {
			if permits && multiplexed[n] && !(unconditional[n] && n != "socketcall") {
				// Whatever happens to it below, the merged profile
				// allows some calls of n, which i386 multiplexes.
				i386Conflict = true
			}
			switch {
			case unconditional[n] && permits:
				// Our notify is the stricter rule: the agent decides.
			case unconditional[n] && !hasArgs:
				// The base refuses the call outright: that stays, and the
				// profile leaves ours out (libseccomp keeps the first of
				// two unconditional rules).
				keep = append(keep, n)
				skip[n] = true
			case conditional[n] && permits && !hasArgs && defaultAction != specs.ActAllow:
				// libseccomp lets an unconditional rule override every
				// conditional one of the same call, whatever the action.
				if c := complement(n, action); c != nil {
					// The base allows exactly what our rules do not trap.
					for _, r := range c {
						merged = append(merged, r)
					}
					continue
				}
				keep = append(keep, n)
				skip[n] = true
				if n == "socketcall" {
					continue // only i386 has it, and i386 is left out
				}
				warnings = append(warnings, fmt.Sprintf("the base allows %s unconditionally, which overrides connvisor's conditional rules for it (libseccomp): they are left out", n))
			default:
				keep = append(keep, n)
			}
		}
		if len(keep) == 0 {
			continue
		}
		b, _ := json.Marshal(keep)
		r["names"] = b
		merged = append(merged, r)
	}
	for _, r := range ours {
		if skip[r.Syscall] {
			continue
		}
		merged = append(merged, ociRule(r))
	}
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	out["defaultAction"] = defaultAction
	out["syscalls"] = merged
	if opts.ListenerPath != "" {
		out["listenerPath"] = opts.ListenerPath
	}
	if opts.Metadata != "" {
		out["listenerMetadata"] = opts.Metadata
	}
	if raw, docker := base["archMap"]; docker {
		if i386Conflict {
			var archMap []map[string]json.RawMessage
			if err := json.Unmarshal(raw, &archMap); err != nil {
				return nil, nil, fmt.Errorf("base profile: archMap: %w", err)
			}
			var kept []map[string]json.RawMessage
			for _, m := range archMap {
				var arch specs.Arch
				json.Unmarshal(m["architecture"], &arch)
				if arch == specs.ArchX86 {
					continue
				}
				var subs []specs.Arch
				json.Unmarshal(m["subArchitectures"], &subs)
				subs = slices.DeleteFunc(subs, func(a specs.Arch) bool { return a == specs.ArchX86 })
				b, _ := json.Marshal(subs)
				m["subArchitectures"] = b
				kept = append(kept, m)
			}
			out["archMap"] = kept
		}
	} else {
		var arches []specs.Arch
		if raw, ok := base["architectures"]; ok {
			json.Unmarshal(raw, &arches)
		}
		for _, a := range profileArches {
			if !slices.Contains(arches, a) {
				arches = append(arches, a)
			}
		}
		if i386Conflict {
			arches = slices.DeleteFunc(arches, func(a specs.Arch) bool { return a == specs.ArchX86 })
		}
		out["architectures"] = arches
	}
	if i386Conflict {
		warnings = append(warnings, "i386 (SCMP_ARCH_X86) is left out: the base allows socket calls that i386 multiplexes through socketcall(2), "+
			"which libseccomp cannot both allow and hand to the agent; i386 programs get the runtime's action for an unlisted ABI")
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return append(b, '\n'), warnings, nil
}

// complement returns rules that give action to the calls of name that
// connvisor's rules do not trap, disjoint from them (so that libseccomp's
// order between overlapping rules never matters), or nil when they cannot
// be written so.
func complement(name string, action specs.LinuxSeccompAction) []specs.LinuxSyscall {
	masked := func(index uint, mask, value uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: index, Value: mask, ValueTwo: value, Op: specs.OpMaskedEqual}
	}
	rule := func(args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{name}, Action: action, Args: args}
	}
	switch name {
	case "sendto":
		// No address and no MSG_FASTOPEN.
		return []specs.LinuxSyscall{rule(
			specs.LinuxSeccompArg{Index: 4, Value: 0, Op: specs.OpEqualTo},
			masked(3, unix.MSG_FASTOPEN, 0),
		)}
	case "socket":
		// Every family the kernel knows, by the int it reads, but the
		// trapped ones; for IPv4 and IPv6 every type but raw (and
		// packet): the other families and types fail natively anyway.
		var out []specs.LinuxSyscall
		for f := uint64(0); f < unix.AF_MAX; f++ {
			if f != unix.AF_INET && f != unix.AF_INET6 && f != unix.AF_PACKET {
				out = append(out, rule(masked(0, 0xffffffff, f)))
			}
		}
		for _, f := range []uint64{unix.AF_INET, unix.AF_INET6} {
			for typ := uint64(0); typ <= 0xf; typ++ {
				if typ == unix.SOCK_RAW || (f == unix.AF_INET && typ == unix.SOCK_PACKET) {
					continue
				}
				out = append(out, rule(masked(0, 0xffffffff, f), masked(1, 0xf, typ)))
			}
		}
		return out
	}
	return nil
}

// ociRule writes one filter rule in the runtime-spec's form. OCI's masked
// comparison takes the mask in value and the datum in valueTwo, as
// libseccomp's SCMP_CMP_MASKED_EQ.
func ociRule(r supervisor.FilterRule) specs.LinuxSyscall {
	s := specs.LinuxSyscall{Names: []string{r.Syscall}, Action: specs.ActNotify}
	if r.Errno != 0 {
		e := uint(r.Errno)
		s.Action, s.ErrnoRet = specs.ActErrno, &e
	}
	for _, a := range r.Args {
		arg := specs.LinuxSeccompArg{Index: a.Index, Value: a.Value}
		switch a.Op {
		case supervisor.ArgEqual:
			arg.Op = specs.OpEqualTo
		case supervisor.ArgNotEqual:
			arg.Op = specs.OpNotEqual
		case supervisor.ArgMaskedEqual:
			arg.Op, arg.Value, arg.ValueTwo = specs.OpMaskedEqual, a.Mask, a.Value
		}
		s.Args = append(s.Args, arg)
	}
	return s
}
