package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/connvisor/connvisor/policy"
)

// maxDecisionLog bounds --decision-log: a decision takes a few hundred
// bytes, so a million is some hundreds of MiB.
const maxDecisionLog = 1 << 20

// ruleFlag appends to one ordered list shared by --allow, --deny, --log,
// --fail and --default, so rules keep their command-line order.
type ruleFlag struct {
	name  string
	rules *[]policy.FlagRule
}

func (f ruleFlag) String() string { return "" }
func (f ruleFlag) Set(v string) error {
	*f.rules = append(*f.rules, policy.FlagRule{Flag: f.name, Value: v})
	return nil
}

type runFlags struct {
	policyFile   string
	rules        []policy.FlagRule
	seed         int64
	seedSet      bool
	summary      bool
	logFormat    string
	logFile      string
	quiet        bool
	mode         string
	waitKillable bool
	allowIOUring bool
	noSendTrap   bool
	keepPtrace   bool
	allowRaw     bool
	allowUserns  bool
	watch        bool
	audit        bool
	control      string
	metrics      string
	decisionLog  int // --decision-log: the control API's recent decisions

	// connvisor learn only
	learning  bool // the command is learn
	out       string
	merge     string
	perExe    bool
	collapse4 int
	collapse6 int
	noDates   bool
	hosts     string // auto or never
}

// errHelp: `connvisor run --help` asked for the usage.
var errHelp = flag.ErrHelp

// runFlag is one flag of `connvisor run` or `connvisor learn`. The parser,
// the hint for a misspelt flag and the usage text all come from
// runFlagTable, so a flag is written once: one line there.
type runFlag struct {
	names []string // the first is the one the usage shows
	arg   string   // the argument's placeholder; "" for a switch
	help  string
	bind  func(fs *flag.FlagSet, name string)
	learn bool // only `connvisor learn` takes it (learn takes every run flag too)
}

// runFlagTable lists every flag of `connvisor run` and `connvisor learn`,
// in the usage's order.
func runFlagTable(rf *runFlags) []runFlag {
	rule := func(kind string) func(*flag.FlagSet, string) {
		return func(fs *flag.FlagSet, name string) { fs.Var(ruleFlag{kind, &rf.rules}, name, "") }
	}
	str := func(p *string, def string) func(*flag.FlagSet, string) {
		return func(fs *flag.FlagSet, name string) { fs.StringVar(p, name, def, "") }
	}
	sw := func(p *bool) func(*flag.FlagSet, string) {
		return func(fs *flag.FlagSet, name string) { fs.BoolVar(p, name, false, "") }
	}
	num := func(p *int) func(*flag.FlagSet, string) {
		return func(fs *flag.FlagSet, name string) { fs.IntVar(p, name, 0, "") }
	}
	seed := func(fs *flag.FlagSet, name string) {
		fs.Func(name, "", func(s string) error {
			_, err := fmt.Sscan(s, &rf.seed)
			rf.seedSet = err == nil
			return err
		})
	}
	return []runFlag{
		{[]string{"policy"}, "FILE", "rules from a policy file (format: policy/GRAMMAR.md)", str(&rf.policyFile, ""), false},
		{[]string{"allow"}, "RULE", "allow destinations matching RULE (repeatable, first match wins)", rule("allow"), false},
		{[]string{"deny"}, "RULE[=ERRNO]", "deny with ERRNO (default EPERM): EACCES, ENETUNREACH, ECONNREFUSED, ...", rule("deny"), false},
		{[]string{"log"}, "RULE", "allow, and log the decision at warn level", rule("log"), false},
		{[]string{"fail"}, "RULE=ERRNO[:OPTS]", "inject a fault: when=3..4, probability=0.05, delay=2s, for=10s, after=5s, every=30s; ERRNO may be blackhole", rule("fail"), false},
		{[]string{"default"}, "allow|deny[=ERRNO]", "what no rule matches gets", rule("default"), false},
		{[]string{"seed"}, "N", "replay probability= faults exactly (logged when not given)", seed, false},
		{[]string{"summary"}, "", "per-destination counts and latency percentiles at exit", sw(&rf.summary), false},
		{[]string{"log-format"}, "console|json", "decision log format", str(&rf.logFormat, "console"), false},
		{[]string{"log-file"}, "PATH", "write the decision log there instead of stderr", str(&rf.logFile, ""), false},
		{[]string{"quiet", "q"}, "", "log warnings and errors only (learn: errors only)", sw(&rf.quiet), false},
		{[]string{"mode"}, "emulate|continue", "continue: the kernel connects (trusted programs only: the target can swap the address after the check)", str(&rf.mode, "emulate"), false},
		{[]string{"wait-killable"}, "", "only fatal signals interrupt a trapped call once it is received", sw(&rf.waitKillable), false},
		{[]string{"allow-io-uring"}, "", "let the command use io_uring (its connects are invisible to seccomp)", sw(&rf.allowIOUring), false},
		{[]string{"no-send-trap"}, "", "do not police sendto/sendmsg/sendmmsg destinations", sw(&rf.noSendTrap), false},
		{[]string{"allow-raw"}, "", "let the command create raw and packet sockets (they bypass port rules)", sw(&rf.allowRaw), false},
		{[]string{"allow-ptrace"}, "", "leave ptrace to the command: CAP_SYS_PTRACE if root, no Landlock domain (see Threat model)", sw(&rf.keepPtrace), false},
		{[]string{"allow-userns"}, "", "let the command create user namespaces (it could mount over the paths UNIX rules name)", sw(&rf.allowUserns), false},
		{[]string{"watch"}, "", "reload the policy file when it changes (SIGUSR2 reloads it too)", sw(&rf.watch), false},
		{[]string{"audit"}, "", "deny nothing: log what the policy would deny as would-deny (like `mode audit`)", sw(&rf.audit), false},
		{[]string{"control"}, "PATH", "serve the control API (HTTP/JSON, see connvisor ctl) on a UNIX socket at PATH, mode 0600", str(&rf.control, ""), false},
		{[]string{"metrics"}, "ADDR", "serve Prometheus /metrics on TCP ADDR (like 127.0.0.1:9464)", str(&rf.metrics, ""), false},
		{[]string{"decision-log"}, "N", "keep the last N decisions for the control API's /v1/decisions (default 4096)", num(&rf.decisionLog), false},
		{[]string{"o"}, "FILE", "write the learned policy there (default: standard output), atomically", str(&rf.out, "-"), true},
		{[]string{"merge"}, "FILE", "add what the run needed and FILE does not allow to FILE (or to -o)", str(&rf.merge, ""), true},
		{[]string{"per-exe"}, "", "exe= on the rule of a destination that one executable alone used", sw(&rf.perExe), true},
		{[]string{"collapse-ipv4"}, "LEN", "widen IPv4 addresses to prefixes of LEN bits (e.g. 24)", num(&rf.collapse4), true},
		{[]string{"collapse-ipv6"}, "LEN", "widen IPv6 addresses to prefixes of LEN bits (e.g. 64)", num(&rf.collapse6), true},
		{[]string{"no-dates"}, "", "leave dates out, so that the same run writes the same bytes", sw(&rf.noDates), true},
		{[]string{"hosts"}, "auto|never", "auto: rules name the hosts the run's own DNS answers named (needs root); never: addresses only", str(&rf.hosts, "auto"), true},
	}
}

// runFlagUsage is the usage's list of run flags (learn: of the flags only
// learn takes), from the table.
func runFlagUsage(learn bool) string {
	var table []runFlag
	for _, f := range runFlagTable(&runFlags{}) {
		if f.learn == learn {
			table = append(table, f)
		}
	}
	return flagUsage(table)
}

// flagUsage lists the flags of a table.
func flagUsage(table []runFlag) string {
	var b strings.Builder
	for _, f := range table {
		names := make([]string, len(f.names))
		for i, n := range f.names {
			names[i] = "--" + n
			if len(n) == 1 {
				names[i] = "-" + n
			}
		}
		left := strings.Join(names, "/")
		if f.arg != "" {
			left += " " + f.arg
		}
		if len(left) > 25 {
			fmt.Fprintf(&b, "  %s\n  %-25s %s\n", left, "", f.help)
			continue
		}
		fmt.Fprintf(&b, "  %-25s %s\n", left, f.help)
	}
	return b.String()
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, []string, error) {
	return parseFlags("run", args)
}

// parseFlags parses the flags of `connvisor run` or, with sub "learn", of
// `connvisor learn` (the run flags and learn's own).
func parseFlags(sub string, args []string) (*runFlags, []string, error) {
	rf := &runFlags{learning: sub == "learn"}
	fs := flag.NewFlagSet("connvisor "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var table []runFlag
	for _, f := range runFlagTable(rf) {
		if f.learn && sub != "learn" {
			continue
		}
		table = append(table, f)
		for _, n := range f.names {
			f.bind(fs, n)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, errHelp
		}
		return nil, nil, flagHint(err, sub, table)
	}
	if rf.logFormat != "console" && rf.logFormat != "json" {
		return nil, nil, fmt.Errorf("--log-format %q: expected console or json", rf.logFormat)
	}
	if rf.mode != "emulate" && rf.mode != "continue" {
		return nil, nil, fmt.Errorf("--mode %q: expected emulate or continue", rf.mode)
	}
	if rf.watch && rf.policyFile == "" {
		return nil, nil, fmt.Errorf("--watch needs --policy FILE")
	}
	if rf.decisionLog < 0 || rf.decisionLog > maxDecisionLog {
		return nil, nil, fmt.Errorf("--decision-log %d: expected a number of decisions from 1 to %d (0: the default)", rf.decisionLog, maxDecisionLog)
	}
	if rf.collapse4 < 0 || rf.collapse4 > 32 {
		return nil, nil, fmt.Errorf("--collapse-ipv4 %d: expected a prefix length from 1 to 32 (0: off)", rf.collapse4)
	}
	if rf.collapse6 < 0 || rf.collapse6 > 128 {
		return nil, nil, fmt.Errorf("--collapse-ipv6 %d: expected a prefix length from 1 to 128 (0: off)", rf.collapse6)
	}
	if sub == "learn" && rf.hosts != "auto" && rf.hosts != "never" {
		return nil, nil, fmt.Errorf("--hosts %q: expected auto or never", rf.hosts)
	}
	if sub == "learn" && rf.out == "" {
		return nil, nil, fmt.Errorf("-o needs a file name (or - for standard output)")
	}
	cmd := fs.Args()
	if len(cmd) == 0 {
		return nil, nil, fmt.Errorf("no command given: connvisor %s [flags] -- CMD [ARGS...]", sub)
	}
	return rf, cmd, nil
}

// ctlFlags are the flags of `connvisor ctl`.
type ctlFlags struct {
	control string
	json    bool
	after   int64
	since   uint64
	limit   int
}

// ctlFlagTable lists every flag of `connvisor ctl`, in the usage's order.
func ctlFlagTable(cf *ctlFlags) []runFlag {
	return []runFlag{
		{[]string{"control"}, "PATH", "the control socket of a `connvisor run --control PATH` (default $CONNVISOR_CONTROL)", func(fs *flag.FlagSet, name string) {
			fs.StringVar(&cf.control, name, os.Getenv("CONNVISOR_CONTROL"), "")
		}, false},
		{[]string{"json"}, "", "print the API's JSON answer instead of a table", func(fs *flag.FlagSet, name string) { fs.BoolVar(&cf.json, name, false, "") }, false},
		{[]string{"after"}, "ID", "add: insert after the rule with this id (default: in front)", func(fs *flag.FlagSet, name string) { fs.Int64Var(&cf.after, name, -1, "") }, false},
		{[]string{"since"}, "N", "decisions: only those after decision N", func(fs *flag.FlagSet, name string) { fs.Uint64Var(&cf.since, name, 0, "") }, false},
		{[]string{"limit"}, "N", "decisions: at most N", func(fs *flag.FlagSet, name string) { fs.IntVar(&cf.limit, name, 0, "") }, false},
	}
}

// parseCtlFlags reads ctl's flags, which may come before or after the
// action ("ctl --json stats" and "ctl stats --json" both work).
func parseCtlFlags(args []string) (*ctlFlags, []string, error) {
	cf := &ctlFlags{}
	fs := flag.NewFlagSet("connvisor ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	table := ctlFlagTable(cf)
	for _, f := range table {
		for _, n := range f.names {
			f.bind(fs, n)
		}
	}
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, errHelp
			}
			return nil, nil, flagHint(err, "ctl", table)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			rest = append(rest, args[1:]...)
			break
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
	if cf.control == "" {
		return nil, nil, errors.New("no control socket: give --control PATH (as given to connvisor run --control) or set CONNVISOR_CONTROL")
	}
	if len(rest) == 0 {
		return nil, nil, errors.New("no action: expected policy, rules, add, rm, stats, reset or decisions")
	}
	return cf, rest, nil
}

// flagHint turns "flag provided but not defined: -dney" into a suggestion.
func flagHint(err error, sub string, table []runFlag) error {
	msg := err.Error()
	const undefined = "flag provided but not defined: "
	if !strings.HasPrefix(msg, undefined) {
		return err
	}
	name := strings.TrimLeft(strings.TrimPrefix(msg, undefined), "-")
	var known []string
	for _, f := range table {
		known = append(known, f.names...)
	}
	if best := policy.Suggest(name, known); best != "" {
		return fmt.Errorf("unknown flag --%s (did you mean --%s?)", name, best)
	}
	if sub == "run" {
		for _, f := range runFlagTable(&runFlags{}) {
			if f.learn && slices.Contains(f.names, name) {
				return fmt.Errorf("--%s is a flag of connvisor learn", name)
			}
		}
	}
	return fmt.Errorf("unknown flag --%s (see connvisor %s --help)", name, sub)
}

// newLogger builds the decision logger: console for people, JSON for
// machines; quiet keeps warnings and errors only.
func newLogger(rf *runFlags) (*zap.Logger, func(), error) {
	var enc zapcore.Encoder
	if rf.logFormat == "json" {
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	} else {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		cfg.EncodeCaller = nil
		cfg.CallerKey = ""
		enc = zapcore.NewConsoleEncoder(cfg)
	}
	out := zapcore.Lock(os.Stderr)
	closer := func() {}
	if rf.logFile != "" {
		f, err := os.OpenFile(rf.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		out = zapcore.Lock(f)
		closer = func() { f.Close() }
	}
	level := zapcore.InfoLevel
	switch {
	case rf.quiet && rf.learning:
		// Every connect of a learning run is a would-deny (warn level) of
		// the policy it starts from: quiet means errors only there.
		level = zapcore.ErrorLevel
	case rf.quiet:
		level = zapcore.WarnLevel
	}
	return zap.New(zapcore.NewCore(enc, out, level)).Named("connvisor"), closer, nil
}

// agentFlags are the flags of `connvisor agent`.
type agentFlags struct {
	listen    string
	policyDir string
	policy    string
	upgrade   bool
	summary   bool
	log       runFlags // the log flags, shared with run's logger
}

// agentFlagTable lists every flag of `connvisor agent`, in the usage's order.
func agentFlagTable(af *agentFlags) []runFlag {
	str := func(p *string, def string) func(*flag.FlagSet, string) {
		return func(fs *flag.FlagSet, name string) { fs.StringVar(p, name, def, "") }
	}
	sw := func(p *bool) func(*flag.FlagSet, string) {
		return func(fs *flag.FlagSet, name string) { fs.BoolVar(p, name, false, "") }
	}
	return []runFlag{
		{[]string{"listen"}, "PATH", "the UNIX socket runtimes hand listeners to (the profile's listenerPath), mode 0600", str(&af.listen, ""), false},
		{[]string{"policy-dir"}, "DIR", "policy files named by listenerMetadata or the org.connvisor.policy annotation", str(&af.policyDir, ""), false},
		{[]string{"policy"}, "FILE", "the policy of containers that name none (without it they are refused: ENOSYS)", str(&af.policy, ""), false},
		{[]string{"upgrade"}, "", "take every listener over from the agent running on --listen, which then exits", sw(&af.upgrade), false},
		{[]string{"summary"}, "", "per-container counts at exit (SIGUSR1 prints them at any time)", sw(&af.summary), false},
		{[]string{"log-format"}, "console|json", "decision log format", str(&af.log.logFormat, "console"), false},
		{[]string{"log-file"}, "PATH", "write the decision log there instead of stderr", str(&af.log.logFile, ""), false},
		{[]string{"quiet", "q"}, "", "log warnings and errors only", sw(&af.log.quiet), false},
	}
}

// profileFlags are the flags of `connvisor profile`.
type profileFlags struct {
	listener string
	metadata string
	base     string
}

// profileFlagTable lists every flag of `connvisor profile`.
func profileFlagTable(pf *profileFlags) []runFlag {
	str := func(p *string, def string) func(*flag.FlagSet, string) {
		return func(fs *flag.FlagSet, name string) { fs.StringVar(p, name, def, "") }
	}
	return []runFlag{
		{[]string{"listener"}, "PATH", "the agent's socket (listenerPath)", str(&pf.listener, "/run/connvisor/agent.sock"), false},
		{[]string{"metadata"}, "NAME", "listenerMetadata: the policy file (in the agent's --policy-dir) for containers of this profile", str(&pf.metadata, ""), false},
		{[]string{"base"}, "FILE", "merge into this profile (OCI linux.seccomp, Docker's format, or a config.json)", str(&pf.base, ""), false},
	}
}

// parseTable parses args against table for the subcommand cmd; positional
// arguments are an error.
func parseTable(cmd string, table []runFlag, args []string) error {
	fs := flag.NewFlagSet("connvisor "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range table {
		for _, n := range f.names {
			f.bind(fs, n)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return flagHint(err, cmd, table)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see connvisor %s --help)", fs.Arg(0), cmd)
	}
	return nil
}
