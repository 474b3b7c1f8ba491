package main

// The named modes: programs the scenario tests wrap, each dialing the way
// a Go service does and printing what it saw in the form its tests read.
//
//	goconnector once ADDR TIMEOUT       dial ADDR once with net.Dialer's
//	                                    timeout (test/faults); one line:
//	                                    "ok ms=N" or "err=TEXT timeout=BOOL
//	                                    refused=BOOL unreachable=BOOL ms=N"
//	goconnector repeat HOST PORT COUNT INTERVAL
//	                                    resolve and dial HOST:PORT COUNT
//	                                    times, INTERVAL apart, each time
//	                                    through the resolver (test/dns);
//	                                    "ok N fail M FIRST-ERROR", and
//	                                    "per-dial DURATION" on stderr
//	goconnector loop ADDR THREADS DIR   THREADS goroutines (each on its own
//	                                    thread) connect to ADDR and close,
//	                                    in a loop, while DIR/pause does not
//	                                    exist, until DIR/stop exists; then
//	                                    "RESULT COUNT" lines (ok,
//	                                    ECONNREFUSED...) (test/control)
//	goconnector probe SOCK              try to reach the control socket
//	                                    SOCK: by its path, a symlink, a hard
//	                                    link, and renamed; "WAY: RESULT"
//	                                    for each (test/control)
//	goconnector get URL...              GET each URL and print the status
//	                                    and body (or the error, and exit 1)
//	                                    (test/learn)
//	goconnector udp-sweep N             connect UDP sockets to N distinct
//	                                    loopback destinations (no datagram
//	                                    is sent); "udp connects: OK of N"
//	                                    (test/learn)

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// A mode is a named mode: how many arguments it takes (-1: any) and what
// it runs.
type mode struct {
	args int
	run  func(args []string)
}

var modes = map[string]mode{
	"once":   {2, func(a []string) { once(a[0], a[1]) }},
	"repeat": {4, func(a []string) { repeat(a[0], a[1], a[2], a[3]) }},
	"loop": {3, func(a []string) {
		threads, _ := strconv.Atoi(a[1])
		loop(a[0], threads, a[2])
	}},
	"probe": {1, func(a []string) { probe(a[0]) }},
	"get":   {-1, get},
	"udp-sweep": {1, func(a []string) {
		n, _ := strconv.Atoi(a[0])
		udpSweep(n)
	}},
}

// runMode runs the named mode of args[0], and reports whether there is one.
func runMode(args []string) bool {
	m, ok := modes[args[0]]
	if !ok {
		return false
	}
	if m.args >= 0 && len(args)-1 != m.args {
		fmt.Fprintf(os.Stderr, "goconnector %s: %d arguments, want %d\n", args[0], len(args)-1, m.args)
		os.Exit(2)
	}
	m.run(args[1:])
	return true
}

func once(addr, timeout string) {
	t, err := time.ParseDuration(timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goconnector once:", err)
		os.Exit(2)
	}
	d := net.Dialer{Timeout: t}
	start := time.Now()
	c, err := d.Dial("tcp", addr)
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

func repeat(host, port, countArg, intervalArg string) {
	count, _ := strconv.Atoi(countArg)
	interval, _ := time.ParseDuration(intervalArg)
	ok, fail := 0, 0
	var first error
	var busy time.Duration
	for i := 0; i < count; i++ {
		start := time.Now()
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 5*time.Second)
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

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func loop(addr string, threads int, dir string) {
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			for !exists(filepath.Join(dir, "stop")) {
				if exists(filepath.Join(dir, "pause")) {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				c, err := net.Dial("tcp", addr)
				if err == nil {
					c.Close()
				}
				mu.Lock()
				counts[errname(err)]++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%s %d\n", k, counts[k])
	}
}

// try connects to path and, when that works, asks the API for the policy:
// "EACCES" (connect refused), "no answer" (connected, closed unanswered)
// or "answered" (the API served the tree: what must never happen).
func try(path string) string {
	c, err := net.Dial("unix", path)
	if err != nil {
		return errname(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /v1/policy HTTP/1.1\r\nHost: connvisor\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "no answer"
	}
	return "answered " + line
}

func probe(sock string) {
	dir := filepath.Dir(sock)
	fmt.Printf("path: %s\n", try(sock))
	sym := filepath.Join(dir, "symlink.sock")
	if err := os.Symlink(sock, sym); err != nil {
		fmt.Printf("symlink: %v\n", err)
	} else {
		fmt.Printf("symlink: %s\n", try(sym))
	}
	hard := filepath.Join(dir, "hardlink.sock")
	if err := os.Link(sock, hard); err != nil {
		fmt.Printf("hardlink: %v\n", err)
	} else {
		fmt.Printf("hardlink: %s\n", try(hard))
		os.Remove(hard)
	}
	moved := filepath.Join(dir, "moved.sock")
	if err := os.Rename(sock, moved); err != nil {
		fmt.Printf("renamed: %v\n", err)
	} else {
		fmt.Printf("renamed: %s\n", try(moved))
		os.Rename(moved, sock)
	}
}

func get(urls []string) {
	failed := false
	for _, u := range urls {
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

func udpSweep(n int) {
	ok := 0
	for i := range n {
		// 127.0.x.y, ports 1000-1999: distinct destinations, all loopback.
		addr := fmt.Sprintf("127.%d.%d.%d:%d", 1+i/1000/250, i/1000%250, 1+i%1000%250, 1000+i%1000)
		c, err := net.Dial("udp4", addr)
		if err == nil {
			ok++
			c.Close()
		}
	}
	fmt.Printf("udp connects: %d of %d\n", ok, n)
}
