// Command goclient is the Go workload of the learn tests: it GETs each URL
// it is given and prints the body (or the error, and exits 1), or, with
// -udp-sweep N, connects a UDP socket to N distinct loopback destinations
// (no datagram is sent) and prints how many connects succeeded.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	sweep := flag.Int("udp-sweep", 0, "connect UDP sockets to this many distinct loopback destinations")
	flag.Parse()
	if *sweep > 0 {
		ok := 0
		for i := range *sweep {
			// 127.0.x.y, ports 1000-1999: distinct destinations, all loopback.
			addr := fmt.Sprintf("127.%d.%d.%d:%d", 1+i/1000/250, i/1000%250, 1+i%1000%250, 1000+i%1000)
			c, err := net.Dial("udp4", addr)
			if err == nil {
				ok++
				c.Close()
			}
		}
		fmt.Printf("udp connects: %d of %d\n", ok, *sweep)
		return
	}
	failed := false
	for _, u := range flag.Args() {
		resp, err := http.Get(u)
		if err != nil {
			fmt.Println("error:", err)
			failed = true
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s", resp.StatusCode, body)
	}
	if failed {
		os.Exit(1)
	}
}
