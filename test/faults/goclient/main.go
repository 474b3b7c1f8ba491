// Command goclient is the Go target of test/faults: it dials one TCP
// address with net.Dialer's timeout, as a Go service would, and prints
// what its error path saw, so the tests can check that an injected fault
// reaches a Go program as the real failure would (Go connects nonblocking
// and learns the outcome from epoll and SO_ERROR).
//
// usage: goclient ADDR TIMEOUT
//
// It prints one line: "ok ms=N" or
// "err=TEXT timeout=BOOL refused=BOOL unreachable=BOOL ms=N".
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: goclient ADDR TIMEOUT")
		os.Exit(2)
	}
	timeout, err := time.ParseDuration(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(2)
	}
	d := net.Dialer{Timeout: timeout}
	start := time.Now()
	c, err := d.Dial("tcp", os.Args[1])
	ms := time.Since(start).Milliseconds()
	if err == nil {
		c.Close()
		fmt.Printf("ok ms=%d\n", ms)
		return
	}
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	fmt.Printf("err=%q timeout=%v refused=%v unreachable=%v ms=%d\n", err.Error(), timedOut,
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENETUNREACH), ms)
}
