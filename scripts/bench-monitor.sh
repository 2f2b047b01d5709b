#!/usr/bin/env bash
# scripts/bench-monitor.sh [runs]: what monitoring costs (docs/benchmarks.md, "Monitoring on against
# off"). The 1->1 throughput and the 10k/s latency of `flowbus bench`, each with the node's
# monitoring off; on (--monitor-port: the latency histograms recorded, the port served, nobody
# asking); and on and scraped every second (/metrics, /varz and /connz, as a Prometheus server and
# the dashboard would) — alternating, `runs` rounds (default 5). One JSON line per result on stdout
# (`flowbus bench` prints them).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
preset=${PRESET:-relwithdebinfo}
bash scripts/build.sh "$preset" flowbus >&2
F=build/$preset/apps/flowbus/flowbus
mport=18222
scraper=
scrape() { # every second until killed
  while true; do
    for p in /metrics /varz /connz; do curl -s -o /dev/null "http://127.0.0.1:$mport$p" || true; done
    sleep 1
  done
}
stop_scraper() { if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; fi; scraper=; }
trap stop_scraper EXIT
on=(--node-arg=--monitor-port=$mport)
for ((r = 1; r <= runs; r++)); do
  echo "== round $r of $runs" >&2
  $F bench throughput --messages 3000000 --size 128 --name ws_pubsub_1to1_monitor_off
  $F bench throughput --messages 3000000 --size 128 --name ws_pubsub_1to1_monitor_on "${on[@]}"
  scrape & scraper=$!
  $F bench throughput --messages 3000000 --size 128 --name ws_pubsub_1to1_monitor_scraped "${on[@]}"
  stop_scraper
  $F bench latency --rate 10000 --seconds 5 --size 128 --name ws_latency_10k_monitor_off
  $F bench latency --rate 10000 --seconds 5 --size 128 --name ws_latency_10k_monitor_on "${on[@]}"
  scrape & scraper=$!
  $F bench latency --rate 10000 --seconds 5 --size 128 --name ws_latency_10k_monitor_scraped "${on[@]}"
  stop_scraper
done
