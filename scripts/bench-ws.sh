#!/usr/bin/env bash
# scripts/bench-ws.sh [runs]: the WebSocket edge's benchmarks (docs/benchmarks.md, "WebSocket edge"),
# each repeated `runs` times (default 3): one JSON line per result on stdout, progress on stderr.
# Every scenario starts its own `flowbus node` process; publisher and subscribers are two more.
# The same latency load also runs through a bare TCP relay (the floor), and the latency and
# throughput loads through nats-server (a lean hand-written client, and cnats). The bare client's
# loads (flowbus_bare_ws_bench) are the lean NATS client's twins: node against server.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bash scripts/build.sh release flowbus flowbus_tcp_relay_bench flowbus_nats_bench flowbus_bare_ws_bench >&2
F=build/release/apps/flowbus/flowbus
# NATS side by side (Debian's nats-server, installed by scripts/setup.sh), on its own port
nats_port=14222
nats-server -a 127.0.0.1 -p $nats_port >/dev/null 2>&1 &
nats_pid=$!
trap 'kill $nats_pid 2>/dev/null || true' EXIT
sleep 0.5
for ((r = 1; r <= runs; r++)); do
  echo "== run $r of $runs" >&2
  $F bench latency --rate 10000 --seconds 10 --size 128
  $F bench latency --rate 50000 --seconds 5 --size 128 --name ws_latency_50000
  $F bench throughput --subscribers 1 --messages 1000000 --size 128
  $F bench throughput --subscribers 10 --messages 200000 --size 128
  # a client that sends every message as its own WebSocket message, as most clients do (issue 19)
  $F bench throughput --subscribers 1 --messages 1000000 --size 128 --client-batch 1
  $F bench throughput --subscribers 10 --messages 200000 --size 128 --client-batch 1
  # publisher and subscriber in one process beside the node's, as NATS's latency tests run
  $F bench latency --rate 10000 --seconds 10 --size 128 --clients-together
  $F bench connections --connections 10000
  # what a bare client (hand-framed WebSocket, no I/O thread) gets through a node: the library's share
  # and its throughput, unbatched (every message its own WebSocket message, 64 KiB writes): the
  # node against nats-server with the same lean client on both (the NATS bench's default client)
  $F node --port 18181 --lossless bench.bare.data >/dev/null 2>&1 &
  bare_node=$!
  sleep 0.5
  build/release/bench/flowbus_bare_ws_bench --port 18181 --rate 10000 --seconds 10 --size 128
  build/release/bench/flowbus_bare_ws_bench --port 18181 --messages 1000000 --size 128
  build/release/bench/flowbus_bare_ws_bench --port 18181 --messages 200000 --subscribers 10 --size 128
  kill $bare_node; wait $bare_node 2>/dev/null || true
  build/release/bench/flowbus_tcp_relay_bench --rate 10000 --seconds 10 --size 128
  build/release/bench/flowbus_nats_bench --port $nats_port --rate 10000 --seconds 10 --size 128
  build/release/bench/flowbus_nats_bench --port $nats_port --messages 1000000 --size 128
  build/release/bench/flowbus_nats_bench --port $nats_port --messages 200000 --subscribers 10 --size 128
  # NATS's own C client (cnats), the baseline issue 19 names
  build/release/bench/flowbus_nats_bench --port $nats_port --client cnats --rate 10000 --seconds 10 --size 128
  build/release/bench/flowbus_nats_bench --port $nats_port --client cnats --messages 1000000 --size 128
  build/release/bench/flowbus_nats_bench --port $nats_port --client cnats --messages 200000 --subscribers 10 --size 128
done
