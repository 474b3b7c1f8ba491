// Command dialer is the Go program the control tests wrap.
//
//	dialer loop ADDR THREADS DIR   THREADS goroutines (each on its own
//	                               thread) connect to ADDR and close, in a
//	                               loop, while DIR/pause does not exist,
//	                               until DIR/stop exists; then it prints
//	                               "RESULT COUNT" lines (ok, ECONNREFUSED...).
//	dialer probe SOCK              try to reach the control socket SOCK:
//	                               by its path, a symlink, a hard link, and
//	                               renamed; prints "WAY: RESULT" for each.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	switch os.Args[1] {
	case "loop":
		threads, _ := strconv.Atoi(os.Args[3])
		loop(os.Args[2], threads, os.Args[4])
	case "probe":
		probe(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "usage: dialer loop ADDR THREADS DIR | dialer probe SOCK")
		os.Exit(2)
	}
}

func errname(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
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
