#!/usr/bin/env bash
# scripts/caf-tsan.sh: builds CAF 0.17.6's core, io (the middleman the cluster links over) and openssl
# (TLS links) with
# ThreadSanitizer into build/caf-tsan/install,
# so the 'tsan' preset can check flowbus's actor code too. Debian's libcaf is not instrumented:
# TSan cannot see the synchronization inside it and reports every message handoff as a race.
#
# The upstream io sources miss an #include <limits> that GCC 12 needs (Debian patches it): the
# flags include it everywhere.
#
# The source is Debian's own (apt-get source actor-framework, the upstream tarball of the packaged
# version). A deb-src entry is added for the download and removed again. Idempotent: does nothing
# when the instrumented library is already there. About 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/build/caf-tsan
[ -f "$root/install/lib/libcaf_core.so" ] && [ -f "$root/install/lib/libcaf_io.so" ] &&
  [ -f "$root/install/lib/libcaf_openssl.so" ] && exit 0
mkdir -p "$root/src"
tarball=$(ls "$root"/src/actor-framework_0.17.6*.orig.tar.gz 2>/dev/null | head -1 || true)
if [ -z "$tarball" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  list=/etc/apt/sources.list.d/flowbus-caf-src.sources
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources | head -1)" | $SUDO tee "$list" >/dev/null
  trap '$SUDO rm -f "$list"; $SUDO apt-get update -qq >/dev/null 2>&1 || true' EXIT
  $SUDO apt-get update -qq
  # only the upstream tarball is needed; the Debian packaging part may be unavailable on a mirror
  (cd "$root/src" && apt-get source --download-only -qq actor-framework >/dev/null 2>&1) || true
  tarball=$(ls "$root"/src/actor-framework_0.17.6*.orig.tar.gz 2>/dev/null | head -1 || true)
  [ -n "$tarball" ] || { echo "caf-tsan: could not download the CAF 0.17.6 source" >&2; exit 1; }
fi
rm -rf "$root/src/actor-framework-0.17.6" && tar xzf "$tarball" -C "$root/src"
cmake -S "$root/src/actor-framework-0.17.6" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer -include limits" -DCMAKE_INSTALL_PREFIX="$root/install" \
  -DCAF_NO_IO=no -DCAF_NO_OPENSSL=no -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_TOOLS=yes \
  -DCAF_NO_PYTHON=yes -DCAF_NO_OPENCL=yes >/dev/null
cmake --build "$root/build" -j2
cmake --install "$root/build" >/dev/null
