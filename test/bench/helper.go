package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// helperEnv, when set, makes this binary (or the test binary) a helper
// program instead of the benchmark: the HTTP client that connvisor wraps.
const helperEnv = "CONNVISOR_BENCH_HELPER"

// helperMain runs the helper named by helperEnv and reports whether it did.
func helperMain() bool {
	switch os.Getenv(helperEnv) {
	case "":
		return false
	case "httpclient":
		os.Exit(httpClient(os.Args[1:]))
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown helper %q\n", os.Getenv(helperEnv))
		os.Exit(2)
	}
	return true
}

// httpClient does N GETs of URL from C goroutines, each on a new connection
// (DisableKeepAlives), and prints the rate: httpclient URL N C.
func httpClient(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: httpclient URL N C")
		return 2
	}
	url := args[0]
	n, _ := strconv.Atoi(args[1])
	c, _ := strconv.Atoi(args[2])
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   30 * time.Second,
	}
	var next, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	fe, _ := firstErr.Load().(string)
	if fe != "" {
		fmt.Fprintf(os.Stderr, "httpclient: %s\n", fe)
	}
	fmt.Printf("RESULT rate=%.0f ms=%.2f n=%d errors=%d\n", float64(n)/d.Seconds(), float64(d.Microseconds())/1000, n, errs.Load())
	return 0
}
