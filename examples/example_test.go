package examples_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// The wrapped programs of these examples are this test binary itself,
// started again by supervisor.SelfCommand (see TestMain): a small HTTP
// client with retries, and a client with a dial timeout.

// startServer serves "hello" on a loopback port.
func startServer() (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }
}

// self is this test binary, started again as role (see TestMain); the
// examples set its policy.
func self(role string, args ...string) *supervisor.Cmd {
	return supervisor.SelfCommand(nil, role, args...)
}

// A client with retries survives two refused connects: the first two
// connects to the server fail with ECONNREFUSED, exactly as if nothing
// listened, and the third gets through.
func Example_retriesSurviveRefusedConnects() {
	addr, stop := startServer()
	defer stop()
	p, err := policy.Load([]policy.FlagRule{
		{Flag: "fail", Value: addr + "=ECONNREFUSED:when=1..2"},
	}, "", policy.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cmd := self("retry", "http://"+addr+"/")
	cmd.SetPolicy(p)
	cmd.Record = true
	out := &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		fmt.Println("client failed:", err)
	}
	fmt.Print(out.String())
	// The program's connect returned EINPROGRESS each time, as Go's
	// nonblocking connect does natively; the refusal came through poll
	// and SO_ERROR, as from a real network.
	for _, e := range cmd.Decisions() {
		if e.Dest.Port == 0 {
			continue
		}
		if e.Decision.Action == policy.Fail {
			fmt.Println(e.Decision.Action, policy.ErrnoName(e.Decision.Errno), "via", policy.ErrnoName(e.Result))
		} else {
			fmt.Println(e.Decision.Action, policy.ErrnoName(e.Result))
		}
	}
	// Output:
	// attempt 1: connection refused
	// attempt 2: connection refused
	// attempt 3: 200 hello
	// fail ECONNREFUSED via EINPROGRESS
	// fail ECONNREFUSED via EINPROGRESS
	// allow EINPROGRESS
}

// A blackholed destination times out: the connect never completes, as
// toward a host that drops SYNs, and the client's own timeout (300 ms)
// fires, long before the rule's (2 s).
func Example_blackholeTimesOut() {
	p, err := policy.Load([]policy.FlagRule{
		{Flag: "fail", Value: "127.0.0.1:9=blackhole:timeout=2s"},
	}, "", policy.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cmd := self("dial", "127.0.0.1:9", "300ms")
	cmd.SetPolicy(p)
	out := &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		fmt.Println("client failed:", err)
	}
	fmt.Print(out.String())
	// Output:
	// timed out
}

// Changing the rules while the program runs: the next three connects to
// the server fail, then connects succeed again.
func ExampleCmd_FailNext() {
	addr, stop := startServer()
	defer stop()
	cmd := self("serve-stdin", "http://"+addr+"/")
	cmd.SetPolicy(policy.Default())
	in, w := io.Pipe()
	cmd.Stdin = in
	out := &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Fprintln(w, "get") // allowed
	time.Sleep(200 * time.Millisecond)
	if err := cmd.FailNext(addr, 3, syscall.ENETUNREACH); err != nil {
		fmt.Println(err)
	}
	for i := 0; i < 4; i++ {
		fmt.Fprintln(w, "get")
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		fmt.Println("client failed:", err)
	}
	fmt.Print(out.String())
	// Output:
	// 200 hello
	// network is unreachable
	// network is unreachable
	// network is unreachable
	// 200 hello
}

// roles are the wrapped programs' side.
var roles = supervisor.Roles{
	"retry": func(args []string) int { return retryClient(args[0]) },
	"dial":  dialClient,
	"serve-stdin": func(args []string) int {
		buf := make([]byte, 4)
		for {
			if _, err := io.ReadFull(os.Stdin, buf); err != nil {
				return 0
			}
			fmt.Println(get(args[0]))
		}
	},
}

// dialClient dials args[0] with the timeout args[1] and says how it ended.
func dialClient(args []string) int {
	d, _ := time.ParseDuration(args[1])
	conn, err := net.DialTimeout("tcp", args[0], d)
	if err == nil {
		conn.Close()
		fmt.Println("connected")
		return 0
	}
	// The dial's own timeout, not the rule's ETIMEDOUT: a blackhole
	// must never outlive the program's timeout.
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, syscall.ETIMEDOUT) {
		fmt.Println("timed out")
		return 0
	}
	fmt.Println("error:", err)
	return 1
}

func retryClient(url string) int {
	for attempt := 1; attempt <= 5; attempt++ {
		res := get(url)
		fmt.Printf("attempt %d: %s\n", attempt, res)
		if strings.HasPrefix(res, "200") {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 1
}

// get fetches url on a new connection and describes the outcome.
func get(url string) string {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return errno.Error()
		}
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}
