#!/usr/bin/env bash
# scripts/main.sh: set up, build (release) and run flowbus's main job.
# Today that is the codec benchmark: JSON lines per result, then a readable summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh release flowbus_codec_bench
exec build/release/bench/flowbus_codec_bench --summary "$@"
