// Command demoserver serves one line over HTTP on a loopback port, for the
// README's demo: a real program (curl) reaches it through connvisor.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "where to listen (loopback)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("demoserver: %v", err)
	}
	// The port goes to stdout first, so the demo script knows where to point curl.
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from a loopback server, reached through connvisor")
	})))
}
