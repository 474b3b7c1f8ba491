package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/connvisor/connvisor/agent"
	"github.com/connvisor/connvisor/policy"
)

const agentUsage = `Usage: connvisor agent --listen PATH [--policy-dir DIR] [--policy FILE] [flags]

Supervises the containers whose seccomp profile (see connvisor profile) hands
their listener to PATH. A container's policy is the file its profile's
listenerMetadata names in DIR, else the one its org.connvisor.policy
annotation names, else FILE; with none, its listener is refused and its
trapped calls fail with ENOSYS.

SIGUSR1 prints the per-container summary; SIGUSR2 reads every running
container's policy file again; SIGHUP starts a new agent
(the binary on disk) that takes every listener over, and this one exits;
SIGINT and SIGTERM stop supervising (the containers' trapped calls fail
with ENOSYS) and exit.

Flags:
%s`

func agentCommand(args []string) int {
	af := &agentFlags{}
	table := agentFlagTable(af)
	if err := parseTable("agent", table, args); err != nil {
		if errors.Is(err, errHelp) {
			fmt.Printf(agentUsage, flagUsage(table))
			return 0
		}
		fmt.Fprintf(os.Stderr, "connvisor agent: %v\n", err)
		return exitUsage
	}
	if af.listen == "" {
		fmt.Fprintln(os.Stderr, "connvisor agent: --listen PATH is required")
		return exitUsage
	}
	if af.log.logFormat != "console" && af.log.logFormat != "json" {
		fmt.Fprintf(os.Stderr, "connvisor agent: --log-format %q: expected console or json\n", af.log.logFormat)
		return exitUsage
	}
	log, closeLog, err := newLogger(&af.log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor agent: %v\n", err)
		return exitUsage
	}
	defer closeLog()
	defer log.Sync()
	opts := policy.Options{ReadFile: os.ReadFile, Resolve: resolveHost}
	a, err := agent.New(agent.Config{
		Listen: af.listen, PolicyDir: af.policyDir, PolicyFile: af.policy, Upgrade: af.upgrade, Logger: log,
		LoadPolicy: func(path string) (*policy.Policy, error) { return policy.Load(nil, path, opts) },
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor agent: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		for sig := range sigs {
			switch sig {
			case syscall.SIGUSR1:
				a.WriteSummary(os.Stderr)
			case syscall.SIGUSR2:
				a.Reload()
			case syscall.SIGHUP:
				startSuccessor(args, log)
			default:
				log.Info("stopping: the containers' trapped calls fail with ENOSYS from now on", zap.Stringer("signal", sig))
				cancel()
			}
		}
	}()
	err = a.Serve(ctx)
	if af.summary {
		a.WriteSummary(os.Stderr)
	}
	switch {
	case errors.Is(err, agent.ErrUpgraded):
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "connvisor agent: %v\n", err)
		return exitInternal
	}
	return 0
}

// startSuccessor runs the binary on disk as `agent --upgrade` with this
// agent's flags; it takes every listener over and this agent exits. The
// successor outlives this process, so it is not started as a PID
// namespace's init's child in a container (see README).
func startSuccessor(args []string, log *zap.Logger) {
	self, err := os.Executable()
	if err != nil {
		log.Error("SIGHUP: find own executable", zap.Error(err))
		return
	}
	cmd := exec.Command(self, append([]string{"agent", "--upgrade"}, withoutUpgrade(args)...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Error("SIGHUP: start the new agent", zap.Error(err))
		return
	}
	log.Info("SIGHUP: new agent started, handing over", zap.Int("pid", cmd.Process.Pid))
	go cmd.Wait()
}

func withoutUpgrade(args []string) []string {
	var out []string
	for _, a := range args {
		if a != "--upgrade" && a != "-upgrade" && a != "--upgrade=true" {
			out = append(out, a)
		}
	}
	return out
}

const profileUsage = `Usage: connvisor profile [--listener PATH] [--metadata NAME] [--base FILE]

Prints the OCI linux.seccomp object that hands the container's connects,
sends and the other doors connvisor closes to the agent on PATH: what runc's
config.json, ctr run --seccomp-profile and a Kubernetes Localhost profile load.

Flags:
%s`

func profileCommand(args []string) int {
	pf := &profileFlags{}
	table := profileFlagTable(pf)
	if err := parseTable("profile", table, args); err != nil {
		if errors.Is(err, errHelp) {
			fmt.Printf(profileUsage, flagUsage(table))
			return 0
		}
		fmt.Fprintf(os.Stderr, "connvisor profile: %v\n", err)
		return exitUsage
	}
	var base []byte
	if pf.base != "" {
		b, err := os.ReadFile(pf.base)
		if err != nil {
			fmt.Fprintf(os.Stderr, "connvisor profile: --base: %v\n", err)
			return exitUsage
		}
		base = b
	}
	out, warnings, err := agent.Profile(agent.ProfileOptions{ListenerPath: pf.listener, Metadata: pf.metadata, Base: base})
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor profile: %v\n", err)
		return exitUsage
	}
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "connvisor profile: warning: %s\n", w)
	}
	os.Stdout.Write(out)
	return 0
}
