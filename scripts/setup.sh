#!/usr/bin/env bash
# Installs the Debian 12 packages flowbus builds with, only those missing. Idempotent; run as root
# (or with sudo available). Every layer's dependency is installed now so later layers find it.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libcaf-dev libboost-dev libnuma-dev libspdlog-dev libssl-dev libtoml11-dev
  doctest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
  clang libclang-rt-14-dev        # libFuzzer and the clang sanitizer runtimes
  python3 python3-websockets python3-cryptography  # protocol interop client (Ed25519 agents)
  python3-crc32c python3-venv python3-pip python3-setuptools  # the Python client package: fast CRC, pip install test
  nodejs                          # the JavaScript client's tests (Node's test runner; `ws` from npm, below)
  python3-prometheus-client chromium  # monitoring tests: /metrics parsed, the dashboard in a real browser
  nats-server libnats-dev         # benchmarks: NATS side by side, its own C client too (scripts/bench-ws.sh)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless the installed nodejs brings its own (NodeSource's conflicts with it)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
