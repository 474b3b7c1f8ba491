// Command goconnector is the Go target of connvisor's tests. Given specs,
// it is the Go twin of connector.c, for the integration tests: it dials
// the destinations it is given and prints what it saw. Its named modes
// (modes.go) are the programs the scenario tests wrap.
//
// Go's runtime makes it a different animal from a C program: every dial
// is a nonblocking connect (EINPROGRESS, then poll and SO_ERROR), it runs
// many threads, and SIGURG preemption interrupts system calls, so trapped
// connects are restarted.
//
// Usage: goconnector [OPTIONS] SPEC...   (SPEC: tcp4 ADDR:PORT, tcp6 [ADDR]:PORT,
// udp4 ADDR:PORT, udp6 [ADDR]:PORT, unix /path, unix @abstract)
// or:    goconnector MODE ARGS...      (once, repeat, loop, probe, get, udp-sweep)
//
//	--threads N    dial from N goroutines locked to threads other than the leader
//	--fork         the dials are made by a grandchild whose parent has exited
//	--exec         re-exec this program with the remaining arguments
//	--exit N       exit with status N
//	--signal N     kill itself with signal N at the end
//
// Output lines are the same as connector.c's:
//
//	connect SPEC pid=P tid=T leader=yes|no: ok|ERRNO
//	exchange SPEC: pong|ERRNO|EOF
package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// stageEnv marks the re-executed copies that implement --fork, which Go
// cannot do with fork(2).
const stageEnv = "GOCONNECTOR_STAGE"

var outMu sync.Mutex

func say(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n")
}

func errname(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "ETIMEDOUT"
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "ETIMEDOUT"
	}
	return "error(" + err.Error() + ")"
}

type spec struct{ kind, where string }

func (s spec) network() (string, string) {
	switch s.kind {
	case "unix":
		return "unix", s.where // Go turns a leading @ into an abstract name
	case "tcp4", "tcp6", "udp4", "udp6":
		return s.kind, s.where
	}
	return "", ""
}

func connectOne(s spec) {
	network, addr := s.network()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	tid, pid := unix.Gettid(), os.Getpid()
	leader := "no"
	if tid == pid {
		leader = "yes"
	}
	say("connect %s %s pid=%d tid=%d leader=%s: %s", s.kind, s.where, pid, tid, leader, errname(err))
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "ping pid=%d tid=%d\n", pid, tid); err != nil {
		say("exchange %s %s: %s", s.kind, s.where, errname(err))
		return
	}
	var line string
	if strings.HasPrefix(s.kind, "udp") {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			say("exchange %s %s: %s", s.kind, s.where, errname(err))
			return
		}
		line = string(buf[:n])
	} else {
		line, err = bufio.NewReader(c).ReadString('\n')
		if err != nil && line == "" {
			if err.Error() == "EOF" {
				say("exchange %s %s: EOF", s.kind, s.where)
			} else {
				say("exchange %s %s: %s", s.kind, s.where, errname(err))
			}
			return
		}
	}
	say("exchange %s %s: %s", s.kind, s.where, strings.TrimRight(line, "\n"))
}

func runSpecs(specs []spec, threads int) {
	if threads <= 0 {
		for _, s := range specs {
			connectOne(s)
		}
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < threads; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The main goroutine is locked to the leader (init below), so
			// a locked goroutine runs on some other thread.
			lockOSThread()
			for _, s := range specs {
				connectOne(s)
			}
		}()
	}
	wg.Wait()
}

func main() {
	args := os.Args[1:]
	if len(args) > 0 && runMode(args) {
		os.Exit(0)
	}
	threads, exitCode, sig, fork := 0, 0, 0, false
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		o := args[0]
		args = args[1:]
		num := func() int {
			if len(args) == 0 {
				fmt.Fprintf(os.Stderr, "goconnector: %s needs a number\n", o)
				os.Exit(96)
			}
			n, err := strconv.Atoi(args[0])
			if err != nil {
				fmt.Fprintf(os.Stderr, "goconnector: %s: %v\n", o, err)
				os.Exit(96)
			}
			args = args[1:]
			return n
		}
		switch o {
		case "--threads":
			threads = num()
		case "--exit":
			exitCode = num()
		case "--signal":
			sig = num()
		case "--fork":
			fork = true
		case "--exec":
			self, _ := os.Executable()
			say("exec %s pid=%d", self, os.Getpid())
			err := syscall.Exec(self, append([]string{os.Args[0]}, args...), os.Environ())
			say("exec %s: %s", self, errname(err))
			os.Exit(97)
		default:
			fmt.Fprintf(os.Stderr, "goconnector: unknown option %s\n", o)
			os.Exit(96)
		}
	}
	if len(args)%2 != 0 {
		fmt.Fprintln(os.Stderr, "goconnector: specs are pairs: KIND ADDRESS")
		os.Exit(96)
	}
	var specs []spec
	for i := 0; i < len(args); i += 2 {
		s := spec{args[i], args[i+1]}
		if n, _ := s.network(); n == "" {
			fmt.Fprintf(os.Stderr, "goconnector: bad spec %s %s\n", s.kind, s.where)
			os.Exit(96)
		}
		specs = append(specs, s)
	}

	switch stage := os.Getenv(stageEnv); {
	case fork && stage == "":
		// Leader: start the child, which starts the grandchild and exits;
		// wait for the grandchild through the pipe it holds.
		r, w, err := os.Pipe()
		if err != nil {
			os.Exit(95)
		}
		if err := respawn("child", w); err != nil {
			say("fork: %v", err)
			os.Exit(95)
		}
		w.Close()
		var b [1]byte
		r.Read(b[:])
	case stage == "child":
		if err := respawn("grandchild", os.NewFile(3, "pipe")); err != nil {
			os.Exit(95)
		}
		os.Exit(0) // without waiting: the grandchild becomes an orphan
	case stage == "grandchild":
		time.Sleep(50 * time.Millisecond)
		say("grandchild pid=%d ppid=%d", os.Getpid(), os.Getppid())
		runSpecs(specs, threads)
		os.Exit(0)
	default:
		runSpecs(specs, threads)
	}
	if sig != 0 {
		signalSelf(syscall.Signal(sig))
	}
	os.Exit(exitCode)
}

// respawn starts this program again at the next stage, passing pipe as fd 3.
func respawn(stage string, pipe *os.File) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), stageEnv+"="+stage)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{pipe}
	if err := cmd.Start(); err != nil {
		return err
	}
	if stage == "child" {
		return cmd.Wait()
	}
	return nil
}
