#!/usr/bin/env bash
# scripts/test.sh [PRESET]: set up, build and run the whole test suite through CTest.
# PRESET: relwithdebinfo (default), debug, asan-ubsan, tsan.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-relwithdebinfo}
bash scripts/build.sh "$preset"
ctest --preset "$preset"
