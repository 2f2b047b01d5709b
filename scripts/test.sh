#!/usr/bin/env bash
# scripts/test.sh [PRESET]: set up, build and run the whole test suite through CTest.
# PRESET: relwithdebinfo (default; then the install test, scripts/test-install.sh), debug, asan-ubsan, tsan.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-relwithdebinfo}
if [ "$preset" = tsan ]; then
  bash scripts/setup.sh
  bash scripts/caf-tsan.sh # CAF itself must be instrumented for TSan to see its synchronization
fi
bash scripts/build.sh "$preset"
ctest --preset "$preset"
if [ "$preset" = relwithdebinfo ]; then
  bash scripts/test-install.sh "build/$preset" # cmake --install, then find_package(flowbus) from outside
fi
