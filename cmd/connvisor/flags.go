package main

import (
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
	watch        bool
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, []string, error) {
	rf := &runFlags{}
	fs := flag.NewFlagSet("connvisor run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&rf.policyFile, "policy", "", "")
	for _, n := range []string{"allow", "deny", "log", "fail", "default"} {
		fs.Var(ruleFlag{n, &rf.rules}, n, "")
	}
	fs.Func("seed", "", func(s string) error {
		_, err := fmt.Sscan(s, &rf.seed)
		rf.seedSet = err == nil
		return err
	})
	fs.BoolVar(&rf.summary, "summary", false, "")
	fs.StringVar(&rf.logFormat, "log-format", "console", "")
	fs.StringVar(&rf.logFile, "log-file", "", "")
	fs.BoolVar(&rf.quiet, "q", false, "")
	fs.BoolVar(&rf.quiet, "quiet", false, "")
	fs.StringVar(&rf.mode, "mode", "emulate", "")
	fs.BoolVar(&rf.waitKillable, "wait-killable", false, "")
	fs.BoolVar(&rf.allowIOUring, "allow-io-uring", false, "")
	fs.BoolVar(&rf.noSendTrap, "no-send-trap", false, "")
	fs.BoolVar(&rf.watch, "watch", false, "")
	fs.BoolVar(&rf.keepPtrace, "allow-ptrace", false, "")
	fs.BoolVar(&rf.allowRaw, "allow-raw", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, nil, flagHint(err, args)
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
func flagHint(err error, args []string) error {
	msg := err.Error()
	const undefined = "flag provided but not defined: "
	if !strings.HasPrefix(msg, undefined) {
		return err
	}
	name := strings.TrimLeft(strings.TrimPrefix(msg, undefined), "-")
	known := []string{"policy", "allow", "deny", "log", "fail", "default", "seed", "summary",
		"log-format", "log-file", "quiet", "mode", "wait-killable", "allow-io-uring", "no-send-trap", "watch", "allow-ptrace", "allow-raw"}
	if best := policy.Suggest(name, known); best != "" {
		return fmt.Errorf("unknown flag --%s (did you mean --%s?)", name, best)
	}
	return fmt.Errorf("unknown flag --%s (see connvisor --help)", name)
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
