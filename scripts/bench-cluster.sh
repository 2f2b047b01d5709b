#!/usr/bin/env bash
# scripts/bench-cluster.sh [ROUNDS]: the cluster's figures in docs/benchmarks.md — one node against
# three linked node processes (publisher or requester on n0, subscriber or responder on another),
# alternating in one run: one-way latency at 10 000 msgs/s, request/reply at 5 000/s, 1->1
# throughput. Prints the benches' JSON lines. Build first: scripts/build.sh release flowbus
set -euo pipefail
cd "$(dirname "$0")/.."
flowbus=build/release/apps/flowbus/flowbus
[ -x "$flowbus" ] || { echo "bench-cluster: build first: scripts/build.sh release flowbus" >&2; exit 1; }
for _ in $(seq "${1:-3}"); do
  for n in 1 3; do
    "$flowbus" bench latency --rate 10000 --seconds 5 --cluster-nodes "$n" 2>/dev/null | grep '^{'
    "$flowbus" bench request --rate 5000 --seconds 4 --cluster-nodes "$n" 2>/dev/null | grep '^{'
    "$flowbus" bench throughput --messages 300000 --cluster-nodes "$n" 2>/dev/null | grep '^{'
  done
done
