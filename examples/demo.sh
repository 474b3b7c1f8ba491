#!/bin/sh
# The README's demo: build connvisor, start a loopback HTTP server, and run
# curl under the embedded default policy twice: once to the loopback server
# (allowed) and once to 192.0.2.1 (TEST-NET-1, denied with EPERM before any
# packet leaves the machine).
set -eu
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/connvisor ./cmd/connvisor
go build -o bin/demoserver ./examples/demoserver
fifo=$(mktemp -u); mkfifo "$fifo"
bin/demoserver >"$fifo" & server=$!
trap 'kill $server 2>/dev/null; rm -f "$fifo"' EXIT
read -r port <"$fifo"

echo "== allowed: curl http://127.0.0.1:$port/ under the default policy"
bin/connvisor run -- curl -sS "http://127.0.0.1:$port/"
echo "== denied: curl http://192.0.2.1/ under the default policy (expect exit 7, EPERM)"
if bin/connvisor run -- curl -sS -m 5 http://192.0.2.1/; then
  echo "demo: the denied connect went through" >&2; exit 1
fi
echo "== refused on request: --deny 127.0.0.1:$port=ECONNREFUSED while the server listens"
if bin/connvisor run -q --deny "127.0.0.1:$port=ECONNREFUSED" -- curl -sS "http://127.0.0.1:$port/"; then
  echo "demo: the refused connect went through" >&2; exit 1
fi
echo "demo ok"
