#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs trace_reader_fuzz for a
# bounded time, starting from the checked-in seeds (tests/data/fuzz_seeds/).
#   RELIVE_FUZZ_SECONDS  run time in seconds (default 60)
#   RELIVE_FUZZ_JOBS     ninja parallelism (default 1)
# New inputs go to build-fuzz/corpus/; crashes to build-fuzz/artifacts/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
seconds="${RELIVE_FUZZ_SECONDS:-60}"
jobs="${RELIVE_FUZZ_JOBS:-1}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELIVE_BUILD_FUZZERS=ON >/dev/null
ninja -C "$build" -j"$jobs" trace_reader_fuzz

mkdir -p "$build/corpus" "$build/artifacts"
cp -n "$root"/tests/data/fuzz_seeds/* "$build/corpus/" 2>/dev/null || true

# -rss_limit_mb: the decoders cap their allocations well below this.
exec "$build/fuzz/trace_reader_fuzz" "$build/corpus" \
  -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
  -artifact_prefix="$build/artifacts/" -print_final_stats=1
