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
				if n == "sendto" {
					// The complement of our sendto rules is exact: the
					// base allows what we do not trap.
					merged = append(merged, sendtoComplement(action))
					continue
				}
				keep = append(keep, n)
				skip[n] = true
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
	if _, docker := base["archMap"]; !docker {
		var arches []specs.Arch
		if raw, ok := base["architectures"]; ok {
			json.Unmarshal(raw, &arches)
		}
		for _, a := range profileArches {
			if !slices.Contains(arches, a) {
				arches = append(arches, a)
			}
		}
		out["architectures"] = arches
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return append(b, '\n'), warnings, nil
}

// sendtoComplement allows the sendto calls connvisor's rules do not trap:
// no address and no MSG_FASTOPEN.
func sendtoComplement(action specs.LinuxSeccompAction) specs.LinuxSyscall {
	return specs.LinuxSyscall{Names: []string{"sendto"}, Action: action, Args: []specs.LinuxSeccompArg{
		{Index: 4, Value: 0, Op: specs.OpEqualTo},
		{Index: 3, Value: unix.MSG_FASTOPEN, ValueTwo: 0, Op: specs.OpMaskedEqual},
	}}
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
