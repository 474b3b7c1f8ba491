#!/bin/bash
# Sets up what the tests need on a fresh Debian machine (as root) and runs
# the whole suite: vet, unit and integration tests, short fuzzing of the
# parsers, and a brief run of the benchmarks so they cannot rot.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in gcc libc6-dev libseccomp-dev curl strace iproute2 libcap2-bin git python3 musl-tools libc-ares-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "test/run.sh: missing packages ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The container runtimes of test/containers, one at a time: one that cannot
# be installed here skips its own cases (with the reason), not the suite.
if [ "$(id -u)" = 0 ]; then
  updated=
  for pkg in runc crun busybox-static containerd; do
    dpkg -s "$pkg" >/dev/null 2>&1 && continue
    [ -n "$updated" ] || { apt-get update -qq || true; updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null ||
      echo "test/run.sh: $pkg could not be installed; its container cases skip" >&2
  done
fi
export PATH="$PATH:/usr/local/go/bin"
go mod download

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted" >&2; exit 1; fi
go vet ./...

echo "== tests"
# One package at a time: the fault and conformance suites time what they
# observe (delays, timeouts), and two suites sharing 2 CPUs blur that.
# Run as root, the fault suite, the tarpit tests and the examples also run
# themselves again as user nobody without capabilities (setpriv, from a
# 0755 copy): what a test author who is not root gets is checked too.
go test -p 1 -count=1 -timeout 25m ./...

echo "== race: the control API used concurrently while a wrapped program connects"
go test -race -count=1 -run Concurrent ./control
go test -race -count=1 ./test/control   # connvisor itself built with -race

echo "== fuzz (short)"
fuzz() { go test -run '^$' -fuzz "^$2\$" -fuzztime "${FUZZTIME:-15s}" "$1"; }
fuzz ./policy FuzzParse
fuzz ./policy FuzzDecide
fuzz ./policy/learn FuzzHostName
fuzz ./policy/learn FuzzGeneralise
fuzz ./policy/learn FuzzWrite
fuzz ./emulate FuzzDecodeSockaddr
fuzz ./emulate FuzzReadMsghdr
fuzz ./emulate FuzzReadMmsghdr
fuzz ./emulate FuzzReadSendto
fuzz ./emulate FuzzControl
fuzz ./emulate FuzzParseStatus
fuzz ./dnsnames FuzzParse
fuzz ./dnslearn FuzzPacket
