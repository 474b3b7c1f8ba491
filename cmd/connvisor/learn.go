package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/policy/learn"
	"github.com/connvisor/connvisor/supervisor"
)

// learnCommand runs a command with every connect allowed (under --policy
// or --merge's file, in audit mode) and writes the policy that allows what
// it did.
func learnCommand(args []string) int {
	rf, cmdArgs, err := parseFlags("learn", args)
	if errors.Is(err, errHelp) {
		fmt.Print(usage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor learn: %v\n", err)
		return exitUsage
	}
	if rf.merge != "" && rf.out == "-" {
		rf.out = rf.merge // merge in place
	}
	// Whatever the run is decided by, it denies nothing: the policy is in
	// audit mode. Without one, it is the empty policy the learned file
	// starts from, so every connect is logged as would-deny.
	rf.audit = true
	switch {
	case len(rf.rules) > 0 || rf.policyFile != "":
	case rf.merge != "":
		rf.policyFile = rf.merge
	default:
		rf.rules = []policy.FlagRule{{Flag: "default", Value: "deny=EACCES"}}
	}
	opts := loadOptions(rf)
	w := &learnWriter{rf: rf, cmdArgs: cmdArgs, rec: learn.NewRecorder(0)}
	// Everything that could keep the file from being written is checked
	// before the command starts: a --merge file that does not load, an
	// -o that cannot be written.
	if rf.merge != "" {
		if err := w.readMerge(opts); err != nil {
			fmt.Fprintf(os.Stderr, "connvisor learn: %v\n", err)
			return exitUsage
		}
	}
	if err := checkWritable(rf.out); err != nil {
		fmt.Fprintf(os.Stderr, "connvisor learn: -o %s: %v\n", rf.out, err)
		return exitUsage
	}
	log, closeLog, err := newLogger(rf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor learn: %v\n", err)
		return exitUsage
	}
	defer closeLog()
	defer log.Sync()
	pol, err := loadPolicy(rf, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "connvisor: %v\n", err)
		return exitUsage
	}
	for _, warn := range pol.Warnings() {
		fmt.Fprintf(os.Stderr, "connvisor: warning: %s\n", warn)
	}
	if pol.AllowsEverything() {
		// The kernel then makes every call itself: connvisor sees connects
		// without their socket type (rules say `any`, not tcp or udp) and
		// no sends, and the tree runs with its side doors open.
		fmt.Fprintln(os.Stderr, "connvisor learn: warning: the policy allows everything, so sends and socket types are not seen; learn without it, or from a policy that denies something")
	}

	cmd := newCommand(rf, pol, cmdArgs, log)
	// Decisions name the host an answer gave for the address even when
	// the policy of the run names none: the learned rules name it.
	cmd.Options.LearnNames = rf.hosts == "auto"
	cmd.OnDecision = func(e supervisor.Event) {
		w.rec.Add(learn.Conn{Dest: e.Dest, Exe: e.Exe, Time: e.Time, Send: e.Syscall != "connect",
			Host: e.Decision.Host, HostVia: e.Decision.HostVia})
	}
	// SIGUSR1 writes the file while the command runs; it is not forwarded.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
			w.write("SIGUSR1")
		}
	}()
	// SIGINT and SIGTERM may be followed by a SIGKILL of connvisor itself
	// when the command does not exit: write after forwarding them.
	afterSignal := func(sig os.Signal) {
		// Standard output gets one policy, at exit.
		if (sig == syscall.SIGINT || sig == syscall.SIGTERM) && rf.out != "-" {
			w.write(sig.String())
		}
	}
	code, started := supervise(rf, opts, cmd, log, nil, afterSignal)
	if !started {
		return code
	}
	if rf.summary {
		fmt.Fprintln(os.Stderr, "connvisor summary:")
		cmd.Supervisor().Stats().WriteSummary(os.Stderr)
	}
	if !w.final() {
		return exitInternal
	}
	return code
}

// learnWriter writes the learned policy, one write at a time.
type learnWriter struct {
	rf      *runFlags
	cmdArgs []string
	rec     *learn.Recorder

	// The --merge file as it was when the run started: every write adds
	// to it, so that several writes (SIGUSR1, exit) make one added block.
	mergeText []byte
	mergePol  *policy.Policy

	mu   sync.Mutex
	done bool // the exit write is made: connvisor is about to exit
}

// final makes the exit write; a signal's write that comes later would be
// cut short by the exit, leaving a temporary file, so it writes nothing.
func (w *learnWriter) final() bool {
	ok := w.write("exit")
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	return ok
}

// readMerge reads and loads the --merge file; an error names its place.
func (w *learnWriter) readMerge(opts policy.Options) error {
	text, err := os.ReadFile(w.rf.merge)
	if err != nil {
		return fmt.Errorf("--merge: %w", err)
	}
	opts.Audit = false
	p, err := policy.Load(nil, w.rf.merge, opts)
	if err != nil {
		return fmt.Errorf("--merge: nothing written: %w", err)
	}
	w.mergeText, w.mergePol = text, p
	return nil
}

func (w *learnWriter) options() learn.Options {
	o := learn.Options{
		PerExe:       w.rf.perExe,
		CollapseIPv4: w.rf.collapse4,
		CollapseIPv6: w.rf.collapse6,
		Command:      w.cmdArgs,
		Now:          time.Now(),
		NoDates:      w.rf.noDates,
		NoHosts:      w.rf.hosts == "never",
	}
	if d := os.Getenv("TMPDIR"); d != "" {
		o.TempRoots = []string{d}
	}
	return o
}

// write writes the policy (why: what asked for it) and reports whether it
// could.
func (w *learnWriter) write(why string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return true
	}
	var text []byte
	if w.mergePol != nil {
		m := w.rec.Merge(w.mergeText, w.mergePol, w.options())
		text = m.Text
		for _, r := range m.Refused {
			fmt.Fprintf(os.Stderr, "connvisor learn: not added: %s\n", r)
		}
		if len(m.Added) == 0 {
			fmt.Fprintf(os.Stderr, "connvisor learn (%s): %s allows everything the run did, nothing added\n", why, w.rf.merge)
		} else {
			fmt.Fprintf(os.Stderr, "connvisor learn (%s): added to %s:\n", why, w.rf.out)
			for _, a := range m.Added {
				fmt.Fprintf(os.Stderr, "  %s\n", a)
			}
		}
	} else {
		text = w.rec.Write(w.options())
	}
	if w.rf.out == "-" {
		if _, err := os.Stdout.Write(text); err != nil {
			fmt.Fprintf(os.Stderr, "connvisor learn: write the policy to standard output: %v\n", err)
			return false
		}
		return true
	}
	if err := writeAtomic(w.rf.out, text); err != nil {
		fmt.Fprintf(os.Stderr, "connvisor learn: %v\n", err)
		return false
	}
	if w.mergePol == nil {
		fmt.Fprintf(os.Stderr, "connvisor learn (%s): %d destinations written to %s\n", why, w.rec.Len(), w.rf.out)
	}
	if n := w.rec.Dropped(); n > 0 {
		fmt.Fprintf(os.Stderr, "connvisor learn: truncated: %d calls to destinations past the first %d were not learned (see the file's header)\n", n, w.rec.Len())
	}
	return true
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, synced, then renamed over it, so a reader (or a crash) never
// sees half a policy. An existing file keeps its permissions.
func writeAtomic(path string, data []byte) error {
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkWritable tells, before the command runs, whether writeAtomic could
// write path: its directory must take a new file, and path must not be a
// directory.
func checkWritable(path string) error {
	if path == "-" {
		return nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return errors.New("is a directory")
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot write there: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}
