#!/usr/bin/env bash
# Configures and builds relive into build/ (Release with debug info). Leaves the executables at
# build/bin/relive and build/bin/relived. Extra arguments go to CMake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${RELIVE_JOBS:-$(nproc)}
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
ninja -C build -j"$jobs"
