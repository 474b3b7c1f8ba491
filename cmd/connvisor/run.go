package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/connvisor/connvisor/control"
	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

func runCommand(args []string) int {
	rf, cmdArgs, err := parseRunFlags(args, os.Stderr)
	if errors.Is(err, errHelp) {
		fmt.Print(usage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor run: %v\n", err)
		return exitUsage
	}
	log, closeLog, err := newLogger(rf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor run: %v\n", err)
		return exitUsage
	}
	defer closeLog()
	defer log.Sync()

	opts := loadOptions(rf)
	pol, err := loadPolicy(rf, opts)
	if err != nil {
		// A policy with an error never starts a command.
		fmt.Fprintf(os.Stderr, "connvisor: %v\n", err)
		return exitUsage
	}
	// What `connvisor check` would warn about (shadowed rules, names that
	// did not resolve, CIDRs with host bits) is never silent here either.
	for _, w := range pol.Warnings() {
		fmt.Fprintf(os.Stderr, "connvisor: warning: %s\n", w)
	}
	if !rf.seedSet && pol.UsesProbability() {
		// Warn level, so that -q keeps it: a failing run is replayed with it.
		log.Warn("fault seed (replay with --seed)", zap.Int64("seed", pol.Seed()))
	}

	cmd := newCommand(rf, pol, cmdArgs, log)
	// The control API and the metrics start before the command, so that
	// the tree is kept off the socket from its first connect, and a test
	// can reach the API as soon as the command runs.
	ctl, err := startControl(rf, cmd, opts, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor: %v\n", err)
		return exitUsage
	}
	if ctl != nil {
		defer ctl.Close()
		cmd.Logger = log.WithOptions(zap.Hooks(ctl.ErrorHook))
	}
	code, started := supervise(rf, opts, cmd, cmd.Logger, ctl, nil)
	if started && rf.summary {
		fmt.Fprintln(os.Stderr, "connvisor summary:")
		cmd.Supervisor().Stats().WriteSummary(os.Stderr)
	}
	return code
}

// newCommand makes the supervised command of the run flags.
func newCommand(rf *runFlags, pol *policy.Policy, cmdArgs []string, log *zap.Logger) *supervisor.Cmd {
	cmd := supervisor.Command(pol, cmdArgs[0], cmdArgs[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Logger = log
	cmd.Options = supervisor.Options{
		WaitKillable: rf.waitKillable,
		Continue:     rf.mode == "continue",
		AllowIOUring: rf.allowIOUring,
		NoSendTrap:   rf.noSendTrap,
		KeepPtrace:   rf.keepPtrace,
		AllowRaw:     rf.allowRaw,
		AllowUserns:  rf.allowUserns,
	}
	return cmd
}

// supervise starts cmd and waits for it: it forwards signals (then calls
// afterSignal, when set, with each one), reloads the policy on SIGUSR2 and
// --watch, and re-resolves host names; policy changes go through ctl, the
// control server, when there is one. It returns the exit code connvisor
// should exit with, and whether the command started.
func supervise(rf *runFlags, opts policy.Options, cmd *supervisor.Cmd, log *zap.Logger, ctl *control.Server, afterSignal func(os.Signal)) (int, bool) {
	// Catch the forwarded signals before the command exists, so none is
	// lost in between.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	reloads := make(chan os.Signal, 1)
	signal.Notify(reloads, reloadSignal)
	defer signal.Stop(reloads)

	if err := cmd.Start(); err != nil {
		var se *supervisor.StartError
		if errors.As(err, &se) {
			fmt.Fprintf(os.Stderr, "connvisor: %s\n", se.Msg)
			return se.ExitCode, false
		}
		fmt.Fprintf(os.Stderr, "connvisor: %v\n", err)
		return exitInternal, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := func(why string) {
		next, err := loadPolicy(rf, opts)
		if err != nil {
			log.Error("policy reload rejected, the old policy stays in force", zap.String("trigger", why), zap.Error(err))
			return
		}
		if ctl != nil {
			// Through the control server, which keeps the tree off its
			// socket and numbers the rules after the ids it gave.
			if err := ctl.SetPolicy(next); err != nil {
				log.Error("policy reload rejected, the old policy stays in force", zap.String("trigger", why), zap.Error(err))
				return
			}
		} else {
			cmd.SetPolicy(next)
		}
		log.Info("policy reloaded", zap.String("trigger", why), zap.Int("rules", len(next.Rules())))
		for _, w := range next.Warnings() {
			log.Warn("policy warning", zap.String("warning", w))
		}
	}
	go forwardSignals(sigs, cmd, afterSignal)
	go func() {
		for range reloads {
			if rf.policyFile == "" {
				log.Warn("SIGUSR2: no --policy file to reload")
				continue
			}
			reload("SIGUSR2")
		}
	}()
	if rf.watch {
		go watchFile(ctx, rf.policyFile, reload)
	}
	swap := func(old, next *policy.Policy) bool { cmd.SetPolicy(next); return true }
	if ctl != nil {
		swap = ctl.CompareAndSwap
	}
	go reresolve(ctx, cmd, opts, log, swap)

	return supervisor.ExitCode(cmd.Wait()), true
}

// startControl starts the control API (--control) and the metrics
// (--metrics) for cmd; nil when neither is asked for.
func startControl(rf *runFlags, cmd *supervisor.Cmd, opts policy.Options, log *zap.Logger) (*control.Server, error) {
	if rf.control == "" && rf.metrics == "" {
		return nil, nil
	}
	return control.ForCommand(cmd, rf.control, rf.metrics, control.Config{
		Logger:      log,
		LoadOptions: policy.Options{Resolve: opts.Resolve},
		DecisionLog: rf.decisionLog,
	})
}

// forwardedSignals reach the command as if connvisor were not there: a
// wrapper stays transparent to them, SIGHUP included (a program without a
// handler dies of it natively too).
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// reloadSignal reloads --policy and is not forwarded, so a reload can
// never take the command down. SIGUSR2 because SIGHUP belongs to the
// command (daemons reload their own configuration on it) and, unhandled,
// SIGUSR2 would have killed connvisor rather than reached the command.
const reloadSignal = syscall.SIGUSR2

// forwardSignals passes the forwarded signals to the command, then calls
// after (when set) with each.
func forwardSignals(sigs <-chan os.Signal, cmd *supervisor.Cmd, after func(os.Signal)) {
	for sig := range sigs {
		cmd.Signal(sig)
		if after != nil {
			after(sig)
		}
	}
}

// watchFile reloads the policy when the file's modification time or size
// changes. Polling keeps it simple and works for editors that replace the
// file by renaming.
func watchFile(ctx context.Context, path string, reload func(string)) {
	stamp := func() (time.Time, int64) {
		st, err := os.Stat(path)
		if err != nil {
			return time.Time{}, -1
		}
		return st.ModTime(), st.Size()
	}
	lastT, lastS := stamp()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if mt, sz := stamp(); !mt.Equal(lastT) || sz != lastS {
				lastT, lastS = mt, sz
				reload("file changed")
			}
		}
	}
}

// reresolve looks host names up again at the interval the policy sets, and
// logs the names whose addresses changed.
// swap puts the re-resolved policy in force unless the policy changed
// meanwhile (through the control API): then the next round starts over.
func reresolve(ctx context.Context, cmd *supervisor.Cmd, opts policy.Options, log *zap.Logger, swap func(old, next *policy.Policy) bool) {
	for {
		every := cmd.Policy().ResolveInterval()
		if every <= 0 {
			every = time.Minute // check again later: a reload may set one
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		cur := cmd.Policy()
		if cur.ResolveInterval() <= 0 {
			continue
		}
		next, changes, err := cur.Reresolve(ctx, opts)
		if err != nil {
			log.Warn("re-resolving host names failed, keeping the old addresses", zap.Error(err))
			continue
		}
		for _, c := range changes {
			log.Info("host name addresses changed", zap.String("change", c))
		}
		if len(changes) > 0 && !swap(cur, next) {
			log.Info("policy changed while re-resolving host names; trying again at the next interval")
		}
	}
}

func loadOptions(rf *runFlags) policy.Options {
	opts := policy.Options{ReadFile: os.ReadFile, Resolve: resolveHost, Audit: rf.audit}
	if rf.seedSet {
		seed := rf.seed
		opts.Seed = &seed
	}
	return opts
}

func loadPolicy(rf *runFlags, opts policy.Options) (*policy.Policy, error) {
	if len(rf.rules) == 0 && rf.policyFile == "" && !opts.Audit {
		return policy.Default(), nil
	}
	return policy.Load(rf.rules, rf.policyFile, opts)
}

// resolveHost looks up every A and AAAA record of host.
func resolveHost(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
