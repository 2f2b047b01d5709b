#!/usr/bin/env bash
# scripts/test-install.sh [BUILD_DIR]: installs a built flowbus into a temporary prefix, builds
# tests/install against it with find_package(flowbus) — a client-only agent and an embedded node —
# checks that the agent does not link CAF, and runs the two together; then pip-installs the Python
# client (clients/python) into a virtual environment and asks the node from it; then builds the
# Debian package (cpack) and starts its flowbus from its own node.toml. scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/relwithdebinfo}
tmp=$(mktemp -d)
node_pid=
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
quiet() { "$@" > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; echo "test-install: failed: $*" >&2; return 1; }; }
quiet cmake --install "$build" --prefix "$tmp/prefix"
quiet cmake -S tests/install -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tmp/prefix"
quiet cmake --build "$tmp/build" -j2
# (ldd's output kept first: with pipefail, grep -q leaving early would fail the pipe)
agent_libs=$(ldd "$tmp/build/client_agent")
node_libs=$(ldd "$tmp/build/embedded_node")
if grep -q libcaf <<<"$agent_libs"; then
  echo "test-install: client_agent links CAF:" >&2
  grep libcaf <<<"$agent_libs" >&2
  exit 1
fi
grep -q libcaf_core <<<"$node_libs" || { echo "test-install: ldd shows no CAF in embedded_node either" >&2; exit 1; }
mkfifo "$tmp/in" "$tmp/out"
"$tmp/build/embedded_node" < "$tmp/in" > "$tmp/out" &
node_pid=$!
exec 3> "$tmp/in" # the node serves while this stays open
exec 4< "$tmp/out"
port=
while read -r -u 4 line; do # the node's log lines (spdlog's default sink is stdout), then its port
  case $line in port\ *) port=${line#port }; break ;; esac
done
[ -n "$port" ] || { echo "test-install: embedded_node printed no port" >&2; exit 1; }
"$tmp/build/client_agent" "$port"
# the Python client as a user installs it: pip into a virtual environment (from a copy: pip builds in place)
cp -r clients/python "$tmp/pyclient"
quiet /usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
quiet "$tmp/venv/bin/pip" install --no-build-isolation --no-index "$tmp/pyclient"
(cd "$tmp" && "$tmp/venv/bin/python" - "$port" <<'PY'
import asyncio, sys
import flowbus  # the installed package, not the tree's

async def main(port):
    async with flowbus.Client("ws://127.0.0.1:%s" % port, "install-python") as c:
        r = await c.request("install.echo", "ping", timeout=5)
        assert r.text == "echo: ping", r
        print("python client (%s): reply from %s: %s" % (flowbus.__file__, r.source, r.text))

asyncio.run(main(sys.argv[1]))
PY
)
"$tmp/prefix/bin/flowbus" --help >/dev/null
# the Debian package: its files, its Depends, and its flowbus starting from its own configuration
(cd "$build" && quiet cpack -G DEB -B "$tmp/deb")
deb=$(ls "$tmp"/deb/flowbus_*.deb)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/flowbus ./usr/lib/systemd/system/flowbus.service ./usr/share/flowbus/node.toml \
         ./usr/lib/cmake/flowbus/flowbusConfig.cmake ./usr/include/flowbus/transport/client.hpp; do
  grep -q " $f\$" <<<"$contents" || { echo "test-install: the .deb has no $f" >&2; exit 1; }
done
grep -q "libcaf-core" <<<"$(dpkg-deb -f "$deb" Depends)" || { echo "test-install: the .deb does not depend on CAF" >&2; exit 1; }
dpkg-deb -x "$deb" "$tmp/root"
sed 's|/var/lib/flowbus/dlq|'"$tmp"'/dlq|; s|^port = 8081|port = 0|; s|^monitor-port = 8222|monitor-port = 0|' \
  "$tmp/root/usr/share/flowbus/node.toml" > "$tmp/node.toml"
"$tmp/root/usr/bin/flowbus" --config "$tmp/node.toml" node > "$tmp/deb-node.out" 2>/dev/null &
deb_node=$!
for _ in $(seq 100); do grep -q "monitoring on" "$tmp/deb-node.out" && break; sleep 0.1; done
kill -TERM "$deb_node"
wait "$deb_node" || { echo "test-install: the packaged node did not drain and exit 0" >&2; exit 1; }
grep -q "listening on" "$tmp/deb-node.out" && grep -q "monitoring on" "$tmp/deb-node.out" ||
  { echo "test-install: the packaged node did not start from its node.toml" >&2; cat "$tmp/deb-node.out" >&2; exit 1; }
grep -q "^ExecStart=/usr/bin/flowbus --config /etc/flowbus/node.toml node$" "$tmp/root/usr/lib/systemd/system/flowbus.service" ||
  { echo "test-install: the unit does not start the packaged flowbus with its configuration" >&2; exit 1; }
exec 3>&-
cat <&4 >/dev/null # until the node exits
wait "$node_pid"
node_pid=
echo "test-install: installed, built with find_package(flowbus), client without CAF, node embedded, pip install, .deb: ok"
