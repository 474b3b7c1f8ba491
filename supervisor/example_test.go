package supervisor_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/connvisor/connvisor/internal/testutil"
	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// The wrapped programs of these examples are this test binary itself (see
// the package doc): "dial" connects to each address of its arguments and
// prints what happened; "dial-stdin" does so for each line it reads.
var roles = supervisor.Roles{
	"dial": func(args []string) int {
		for _, addr := range args {
			fmt.Println(dial(addr))
		}
		return 0
	},
	// dial-concurrently N ADDR...: N goroutines each dial every ADDR;
	// prints each distinct outcome with its count.
	"dial-concurrently": func(args []string) int {
		n, _ := strconv.Atoi(args[0])
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, addr := range args[1:] {
					r := dial(addr)
					mu.Lock()
					seen[r]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		keys := make([]string, 0, len(seen))
		for k := range seen {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("%d %s\n", seen[k], k)
		}
		return 0
	},
	"dial-stdin": func(args []string) int {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Println(dial(args[0]))
		}
		return 0
	},
}

func TestMain(m *testing.M) { os.Exit(supervisor.Main(m, roles)) }

// The examples hold for a test author who is not root: run them again as
// user nobody with no capabilities.
func TestExamplesAsNobody(t *testing.T) { testutil.RerunUnprivileged(t, "^Example") }

// dial connects as Go programs do (a nonblocking connect, then poll and
// SO_ERROR) and reads the server's greeting, or says why it could not.
func dial(addr string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return errno.Error()
		}
		return err.Error()
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	return string(b)
}

// serve answers "hello" to every connection on a loopback port.
func serve() (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }
}

// A command under a policy: the server is allowed, port 9 is refused as if
// nothing listened there.
func ExampleCommand() {
	addr, stop := serve()
	defer stop()
	p, err := policy.Load([]policy.FlagRule{
		{Flag: "deny", Value: "127.0.0.1:9=ECONNREFUSED"},
		{Flag: "allow", Value: addr},
	}, "", policy.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Any program works the same way: supervisor.Command(p, "curl", url).
	cmd := supervisor.SelfCommand(p, "dial", addr, "127.0.0.1:9")
	out := &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		fmt.Println("exit status", supervisor.ExitCode(err))
	}
	fmt.Print(out.String())
	// Output:
	// hello
	// connection refused
}

// The next two connects to the server fail, then connects succeed again.
// Go's connect is nonblocking: it returns EINPROGRESS and the refusal
// arrives through poll and SO_ERROR, as from a real network.
func ExampleCmd_FailNext() {
	addr, stop := serve()
	defer stop()
	cmd := supervisor.SelfCommand(policy.Default(), "dial", addr, addr, addr)
	if err := cmd.FailNext(addr, 2, syscall.ECONNREFUSED); err != nil {
		fmt.Println(err)
		return
	}
	out := &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		fmt.Println("exit status", supervisor.ExitCode(err))
	}
	fmt.Print(out.String())
	// Output:
	// connection refused
	// connection refused
	// hello
}

// Swapping the policy while the command runs: the first connect is denied,
// the one after SetPolicy allowed.
func ExampleCmd_SetPolicy() {
	addr, stop := serve()
	defer stop()
	deny, err := policy.Load([]policy.FlagRule{{Flag: "deny", Value: addr + "=EACCES"}, {Flag: "default", Value: "allow"}}, "", policy.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cmd := supervisor.SelfCommand(deny, "dial-stdin", addr)
	in, stdin := io.Pipe()
	stdout, out := io.Pipe()
	cmd.Stdin, cmd.Stdout = in, out
	if err := cmd.Start(); err != nil {
		fmt.Println(err)
		return
	}
	lines := bufio.NewScanner(stdout)
	connect := func() {
		fmt.Fprintln(stdin, "connect")
		lines.Scan()
		fmt.Println(lines.Text())
	}
	connect()
	cmd.SetPolicy(policy.Default()) // loopback allowed
	connect()
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		fmt.Println("exit status", supervisor.ExitCode(err))
	}
	// Output:
	// permission denied
	// hello
}

// Watching every decision: what the policy decided, what connect returned
// to the program, and for an injected fault how its errno reached it.
func ExampleCmd_OnDecision() {
	addr, stop := serve()
	defer stop()
	p, err := policy.Load([]policy.FlagRule{{Flag: "fail", Value: addr + "=ECONNREFUSED:when=1"}, {Flag: "allow", Value: addr}}, "", policy.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cmd := supervisor.SelfCommand(p, "dial", addr, addr)
	var mu sync.Mutex
	var seen []string
	cmd.OnDecision = func(e supervisor.Event) {
		// Called from the supervisor's goroutines: keep it quick.
		line := fmt.Sprintf("%s %s: connect returned %s", e.Decision.Action, e.Dest, policy.ErrnoName(e.Result))
		if e.Decision.Action == policy.Fail {
			line += fmt.Sprintf(", injected %s via %s", policy.ErrnoName(e.Decision.Errno), e.Delivery)
		}
		mu.Lock()
		seen = append(seen, strings.ReplaceAll(line, addr, "SERVER"))
		mu.Unlock()
	}
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		fmt.Println("exit status", supervisor.ExitCode(err))
	}
	fmt.Println(strings.Join(seen, "\n"))
	// Output:
	// fail tcp SERVER: connect returned EINPROGRESS, injected ECONNREFUSED via so_error
	// allow tcp SERVER: connect returned EINPROGRESS
}

// TestSeveralReceivers: with four threads receiving, calls made at once by
// many threads are each decided once and answered (allowed ones connected,
// denied ones refused), and the supervisor ends with the command: the turn
// to receive goes round every receiver until each has seen the end.
func TestSeveralReceivers(t *testing.T) {
	addr, stop := serve()
	defer stop()
	p, err := policy.Load([]policy.FlagRule{
		{Flag: "deny", Value: "127.0.0.1:9=ECONNREFUSED"},
		{Flag: "allow", Value: addr},
	}, "", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := supervisor.SelfCommand(p, "dial-concurrently", "32", addr, "127.0.0.1:9")
	cmd.Options.Receivers = 4
	out := &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	want := "32 " + syscall.ECONNREFUSED.Error() + "\n32 hello\n"
	if out.String() != want {
		t.Fatalf("outcomes:\n%s\nwant:\n%s", out, want)
	}
}
