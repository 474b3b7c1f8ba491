package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/connvisor/connvisor/policy"
)

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
	control      string
	metrics      string
}

// errHelp: `connvisor run --help` asked for the usage.
var errHelp = flag.ErrHelp

// runFlag is one flag of `connvisor run`. The parser, the hint for a
// misspelt flag and the usage text all come from runFlagTable, so a flag
// is written once: one line there.
type runFlag struct {
	names []string // the first is the one the usage shows
	arg   string   // the argument's placeholder; "" for a switch
	help  string
	bind  func(fs *flag.FlagSet, name string)
}

// runFlagTable lists every flag of `connvisor run`, in the usage's order.
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
	seed := func(fs *flag.FlagSet, name string) {
		fs.Func(name, "", func(s string) error {
			_, err := fmt.Sscan(s, &rf.seed)
			rf.seedSet = err == nil
			return err
		})
	}
	return []runFlag{
		{[]string{"policy"}, "FILE", "rules from a policy file (format: policy/GRAMMAR.md)", str(&rf.policyFile, "")},
		{[]string{"allow"}, "RULE", "allow destinations matching RULE (repeatable, first match wins)", rule("allow")},
		{[]string{"deny"}, "RULE[=ERRNO]", "deny with ERRNO (default EPERM): EACCES, ENETUNREACH, ECONNREFUSED, ...", rule("deny")},
		{[]string{"log"}, "RULE", "allow, and log the decision at warn level", rule("log")},
		{[]string{"fail"}, "RULE=ERRNO[:OPTS]", "inject a fault: when=3..4, probability=0.05, delay=2s, for=10s, after=5s, every=30s; ERRNO may be blackhole", rule("fail")},
		{[]string{"default"}, "allow|deny[=ERRNO]", "what no rule matches gets", rule("default")},
		{[]string{"seed"}, "N", "replay probability= faults exactly (logged when not given)", seed},
		{[]string{"summary"}, "", "per-destination counts and latency percentiles at exit", sw(&rf.summary)},
		{[]string{"log-format"}, "console|json", "decision log format", str(&rf.logFormat, "console")},
		{[]string{"log-file"}, "PATH", "write the decision log there instead of stderr", str(&rf.logFile, "")},
		{[]string{"quiet", "q"}, "", "log warnings and errors only", sw(&rf.quiet)},
		{[]string{"mode"}, "emulate|continue", "continue: the kernel connects (trusted programs only: the target can swap the address after the check)", str(&rf.mode, "emulate")},
		{[]string{"wait-killable"}, "", "only fatal signals interrupt a trapped call once it is received", sw(&rf.waitKillable)},
		{[]string{"allow-io-uring"}, "", "let the command use io_uring (its connects are invisible to seccomp)", sw(&rf.allowIOUring)},
		{[]string{"no-send-trap"}, "", "do not police sendto/sendmsg/sendmmsg destinations", sw(&rf.noSendTrap)},
		{[]string{"allow-raw"}, "", "let the command create raw and packet sockets (they bypass port rules)", sw(&rf.allowRaw)},
		{[]string{"allow-ptrace"}, "", "leave ptrace to the command: CAP_SYS_PTRACE if root, no Landlock domain (see Threat model)", sw(&rf.keepPtrace)},
		{[]string{"allow-userns"}, "", "let the command create user namespaces (it could mount over the paths UNIX rules name)", sw(&rf.allowUserns)},
		{[]string{"watch"}, "", "reload the policy file when it changes (SIGUSR2 reloads it too)", sw(&rf.watch)},
		{[]string{"control"}, "PATH", "serve the control API (HTTP/JSON, see connvisor ctl) on a UNIX socket at PATH, mode 0600", str(&rf.control, "")},
		{[]string{"metrics"}, "ADDR", "serve Prometheus /metrics on TCP ADDR (like 127.0.0.1:9464)", str(&rf.metrics, "")},
	}
}

// runFlagUsage is the usage's list of run flags, from the table.
func runFlagUsage() string { return flagUsage(runFlagTable(&runFlags{})) }

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
	rf := &runFlags{}
	fs := flag.NewFlagSet("connvisor run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	table := runFlagTable(rf)
	for _, f := range table {
		for _, n := range f.names {
			f.bind(fs, n)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, errHelp
		}
		return nil, nil, flagHint(err, table, "run")
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
	cmd := fs.Args()
	if len(cmd) == 0 {
		return nil, nil, fmt.Errorf("no command given: connvisor run [flags] -- CMD [ARGS...]")
	}
	return rf, cmd, nil
}

// flagHint turns "flag provided but not defined: -dney" into a suggestion.
func flagHint(err error, table []runFlag, sub string) error {
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
	return fmt.Errorf("unknown flag --%s (see connvisor %s --help)", name, sub)
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
		}},
		{[]string{"json"}, "", "print the API's JSON answer instead of a table", func(fs *flag.FlagSet, name string) { fs.BoolVar(&cf.json, name, false, "") }},
		{[]string{"after"}, "ID", "add: insert after the rule with this id (default: in front)", func(fs *flag.FlagSet, name string) { fs.Int64Var(&cf.after, name, -1, "") }},
		{[]string{"since"}, "N", "decisions: only those after decision N", func(fs *flag.FlagSet, name string) { fs.Uint64Var(&cf.since, name, 0, "") }},
		{[]string{"limit"}, "N", "decisions: at most N", func(fs *flag.FlagSet, name string) { fs.IntVar(&cf.limit, name, 0, "") }},
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
			return nil, nil, flagHint(err, table, "ctl")
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
	if rf.quiet {
		level = zapcore.WarnLevel
	}
	return zap.New(zapcore.NewCore(enc, out, level)).Named("connvisor"), closer, nil
}
