// dialer resolves and dials HOST:PORT COUNT times, INTERVAL apart, each
// time through the resolver (no cache), and prints how many connects
// succeeded: "ok N fail M first-error".
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: dialer HOST PORT COUNT INTERVAL")
		os.Exit(2)
	}
	count, _ := strconv.Atoi(os.Args[3])
	interval, _ := time.ParseDuration(os.Args[4])
	ok, fail := 0, 0
	var first error
	var busy time.Duration
	for i := 0; i < count; i++ {
		start := time.Now()
		c, err := net.DialTimeout("tcp", net.JoinHostPort(os.Args[1], os.Args[2]), 5*time.Second)
		if err != nil {
			fail++
			if first == nil {
				first = err
			}
		} else {
			ok++
			c.Close()
		}
		busy += time.Since(start)
		time.Sleep(interval)
	}
	fmt.Printf("ok %d fail %d %v\n", ok, fail, first)
	fmt.Fprintf(os.Stderr, "per-dial %v\n", busy/time.Duration(max(count, 1)))
}
