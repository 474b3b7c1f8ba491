# Benchmarks of connvisor: what supervision costs per connect, against
# native, a minimal C notification supervisor (the kernel's floor) and
# strace, measured in one run. See test/bench/README.md.
GO ?= go

.PHONY: bench bench-quick

# The full run: 7 interleaved rounds, a few minutes on 2 CPUs.
bench:
	$(GO) run ./test/bench

# A brief run (under 2 minutes) for CI; go test ./test/bench runs it too.
bench-quick:
	$(GO) run ./test/bench -quick
