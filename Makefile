# Benchmarks of connvisor: what supervision costs per connect, against
# native, a minimal C notification supervisor (the kernel's floor) and
# strace, measured in one run. See test/bench/README.md.
GO ?= go
# BENCHFLAGS: more flags, e.g. BENCHFLAGS="-baseline /path/to/older/connvisor".
BENCHFLAGS ?=

.PHONY: bench bench-quick difffuzz realsoftware

# The full run: 7 interleaved rounds, a few minutes on 2 CPUs.
bench:
	$(GO) run ./test/bench $(BENCHFLAGS)

# A brief run (under 2 minutes) for CI; go test ./test/bench runs it too.
bench-quick:
	$(GO) run ./test/bench -quick

# The differential fuzzer of the trapped calls (test/difffuzz) over many
# more seeds than CI's 8 x 2,500 calls: 64 seeds x 5,000 calls, natively,
# under an emulating policy and under the embedded default. Known
# differences are listed, not failed; DIFFFUZZ_STRICT=1 fails on them too.
DIFFFUZZ_SEEDS ?= 64
DIFFFUZZ_CALLS ?= 5000
difffuzz:
	DIFFFUZZ_SEEDS=$(DIFFFUZZ_SEEDS) DIFFFUZZ_CALLS=$(DIFFFUZZ_CALLS) $(GO) test -count=1 -timeout 2h -v -run Differential ./test/difffuzz

# Whole upstream suites (CPython's socket, asyncio, TLS and HTTP test files,
# Go's net and net/http) natively, under an allow-all policy and under an
# emulating policy, compared case by case; prints each suite's figures.
# About 25 minutes on 2 busy CPUs. Outputs and connvisor's JSON decision logs are
# kept in $(REALSOFTWARE_KEEP). CI runs a fixed sample (go test ./test/realsoftware).
REALSOFTWARE_KEEP ?= /tmp/connvisor-realsoftware
realsoftware:
	$(GO) test -count=1 -v -timeout 4h -run 'TestSuites' ./test/realsoftware \
		-args -realsoftware.whole -realsoftware.keep=$(REALSOFTWARE_KEEP) $(REALSOFTWARE_ARGS)
