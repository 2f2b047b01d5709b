#!/usr/bin/env bash
# scripts/bench-clients.sh [runs]: the three clients side by side (docs/benchmarks.md, "Clients"):
# 1->1 throughput and 10k/s latency of the C++ client (`flowbus bench`), the Python package
# (clients/python/bench.py) and the JavaScript client (clients/js/bench.js), against one node
# (`--lossless 'bench.>'`: a subscriber slower than its publisher holds it back instead of losing
# messages, so throughput is what arrives). Alternating, `runs` rounds (default 3); one JSON line
# per result on stdout, then the medians on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
preset=${PRESET:-relwithdebinfo}
bash scripts/build.sh "$preset" flowbus >&2
F=build/$preset/apps/flowbus/flowbus
[ -d clients/js/node_modules/ws ] || (cd clients/js && npm ci --no-audit --no-fund --silent)
out=$(mktemp)
node_pid=
trap '[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; rm -f "$out" "$out.node"' EXIT
"$F" node --port 0 --log-level warn --lossless 'bench.>' > "$out.node" 2>/dev/null &
node_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$out.node" && break; sleep 0.1; done
url=$(grep -o "ws://[0-9.:]*" "$out.node" | head -1)
hostport=${url#ws://}
for ((r = 1; r <= runs; r++)); do
  echo "== round $r of $runs ($url)" >&2
  "$F" bench throughput --connect "$hostport" --messages 1000000 --size 128 --name cpp_pubsub_1to1 | tee -a "$out"
  /usr/bin/python3 clients/python/bench.py throughput "$url" --messages 300000 --size 128 | tee -a "$out"
  node clients/js/bench.js throughput "$url" --messages 300000 --size 128 | tee -a "$out"
  "$F" bench latency --connect "$hostport" --rate 10000 --seconds 5 --size 128 --name cpp_latency_10k | tee -a "$out"
  /usr/bin/python3 clients/python/bench.py latency "$url" --rate 10000 --seconds 5 --size 128 | tee -a "$out"
  node clients/js/bench.js latency "$url" --rate 10000 --seconds 5 --size 128 | tee -a "$out"
done
/usr/bin/python3 - "$out" >&2 <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("{"):
        j = json.loads(line)
        rows.setdefault(j["bench"], []).append(j)
print("medians of %d runs:" % max(len(v) for v in rows.values()))
for name, rs in rows.items():
    keys = [k for k in ("msgs_per_s", "p50_us", "p90_us", "p99_us", "max_us") if k in rs[0]]
    print("  %-18s %s" % (name, "  ".join("%s %.1f" % (k, statistics.median(r[k] for r in rs)) for k in keys)))
PY
