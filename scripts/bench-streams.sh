#!/usr/bin/env bash
# scripts/bench-streams.sh [runs]: latency at 10 000 msgs/s through a durable stream against the
# direct path (docs/benchmarks.md, "Streams at 10 000 msgs/s: measured in the same run"). Each
# round, alternating: the direct path alone; the direct path beside scripts/sync-load.py (a
# `group` stream's disk work, with no stream); and through a `memory`, a `group` and a `never`
# stream, each run also measuring a subscriber on the topic itself (the `*_direct` line) that the
# stream's p99 is compared with (`p99_to_direct`). One JSON line per result on stdout, each with
# its round.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
preset=${PRESET:-relwithdebinfo}
bash scripts/build.sh "$preset" flowbus >&2
F=build/$preset/apps/flowbus/flowbus
tag() { sed -e "s/^{/{\"round\":$1,\"setup\":\"$2\",/"; }
for r in $(seq 1 "$runs"); do
  "$F" bench latency --rate 10000 --seconds 5 2>/dev/null | tag "$r" alone
  python3 scripts/sync-load.py --seconds 6 | tag "$r" sync_load &
  load=$!
  sleep 0.3
  "$F" bench latency --rate 10000 --seconds 5 2>/dev/null | tag "$r" beside_sync_load
  wait "$load"
  for p in memory group never; do
    "$F" bench latency --rate 10000 --seconds 5 --through-stream "$p" 2>/dev/null | tag "$r" "stream_$p"
  done
done
