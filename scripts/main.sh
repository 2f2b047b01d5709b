#!/usr/bin/env bash
# scripts/main.sh [demo options]: set up, build (release) and run flowbus's main job — `flowbus demo`:
# a node with agents exchanging tasks for ~10 s, printing live latency percentiles, then a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh release flowbus
exec build/release/apps/flowbus/flowbus demo "$@"
