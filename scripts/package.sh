#!/usr/bin/env bash
# Builds what the Debian package holds and makes build/relive_VERSION_amd64.deb with CPack
# (packaging/CMakeLists.txt). Run scripts/bootstrap.sh first on a fresh machine. Extra arguments
# go to CMake's configure step. Equivalent by hand: `ninja -C build && cd build && cpack -G DEB`.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${RELIVE_JOBS:-$(nproc)}
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
targets=(relive relived relive_criu_sockopt_shim)
# The man pages exist when help2man was found at configure time.
if ninja -C build -t targets all | grep -q '^relive_man:'; then targets+=(relive_man); fi
ninja -C build -j"$jobs" "${targets[@]}"
(cd build && cpack -G DEB)
ls -1 build/relive_*.deb
