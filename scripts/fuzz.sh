#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (and AddressSanitizer) in build-fuzz/ and runs each for
# a bounded share of the time, starting from its checked-in seeds. Every parser of untrusted
# bytes has a target: the trace reader, the container archive reader, the protocol reader, the
# migration commands and bulk segments, and the CRIU core and pagemap images.
#   RELIVE_FUZZ_SECONDS  total run time in seconds, split between the targets (default 60)
#   RELIVE_FUZZ_JOBS     ninja parallelism (default 1)
# New inputs go to build-fuzz/corpus-<target>/; crashes to build-fuzz/artifacts/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
seconds="${RELIVE_FUZZ_SECONDS:-60}"
jobs="${RELIVE_FUZZ_JOBS:-1}"
# target:seed directory (relative to tests/data, empty for none)
targets=(trace_reader_fuzz:fuzz_seeds archive_reader_fuzz:fuzz_seeds_archive protocol_reader_fuzz: migration_command_fuzz:
         criu_image_fuzz:fuzz_seeds_criu tcp_stream_image_fuzz:)

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELIVE_BUILD_FUZZERS=ON >/dev/null
ninja -C "$build" -j"$jobs" "${targets[@]%%:*}"

share=$(( seconds / ${#targets[@]} ))
[ "$share" -ge 1 ] || share=1
mkdir -p "$build/artifacts"
for entry in "${targets[@]}"; do
  target=${entry%%:*} seeds=${entry#*:}
  corpus="$build/corpus-$target"
  mkdir -p "$corpus"
  [ -n "$seeds" ] && cp -n "$root/tests/data/$seeds"/* "$corpus/" 2>/dev/null || true
  log="$build/$target.log"
  # -rss_limit_mb: the decoders cap their allocations well below this.
  if ! "$build/fuzz/$target" "$corpus" -max_total_time="$share" -max_len=65536 \
      -rss_limit_mb=2048 -artifact_prefix="$build/artifacts/$target-" \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $target found a crash (see $build/artifacts/)" >&2
    exit 1
  fi
  echo "fuzz: $target: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') inputs in ${share} s, no crash"
done
