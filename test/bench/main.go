// Command bench measures what connvisor costs, against the same work done
// natively, against a minimal C notification supervisor (the kernel's
// floor) and against strace, all in one run, and prints aligned tables.
//
//	go run ./test/bench          # the full run (make bench)
//	go run ./test/bench -quick   # a brief run for CI (make bench-quick)
//
// It builds connvisor and the C programs (target.c, floor.c) into a
// temporary directory, so it needs go, gcc and the libc headers; strace is
// optional (its rows are skipped with a note when it is absent).
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if helperMain() {
		return
	}
	cfg := fullConfig()
	quick := flag.Bool("quick", false, "a brief run (for CI): fewer connects, fewer rounds")
	rounds := flag.Int("rounds", 0, "interleaved rounds per measurement (default 7, quick 3)")
	cv := flag.String("connvisor", "", "the connvisor binary to measure (default: build ./cmd/connvisor)")
	only := flag.String("only", "", "run only these steps (comma-separated: latency, untrapped, throughput, scale, policy, real, syscalls)")
	install := flag.Bool("install", true, "apt-get install the Debian packages of missing tools (ab, nginx, redis); the quick run never does")
	baseline := flag.String("baseline", "", "another connvisor binary (an earlier build) measured emulated beside this one in table 8")
	flag.Parse()
	if *quick {
		cfg = quickConfig()
	}
	if *rounds > 0 {
		cfg.Rounds = *rounds
	}
	cfg.Connvisor = *cv
	cfg.Only = *only
	cfg.Baseline = *baseline
	cfg.Install = *install && !cfg.Quick
	if cfg.Connvisor == "" {
		cfg.Connvisor = os.Getenv("CONNVISOR_BENCH_BINARY")
	}
	if err := Run(cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}
