#!/usr/bin/env bash
# Runs every benchmark side by side and rewrites docs/BENCHMARKS.md with the results and the
# command that produced them. Usage: bash bench/run.sh   (RELIVE_BENCH_ROUNDS=N for more rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
mkdir -p docs
out=docs/BENCHMARKS.md
tmp=$(mktemp)
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`bash bench/run.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -r))."
  echo "Every comparison is measured side by side in one run; read the ratios, not the seconds:"
  echo "these machines are noisy and have no hardware performance counters."
  echo
  echo "## Record/replay overhead (issue: relive record / replay / dump)"
  echo
  /usr/bin/python3 bench/record_replay.py
  echo
  echo "## Shared-memory event ring (tracer -> log writer process)"
  echo
  echo '```'
  build/bench/shm_ring_bench
  echo '```'
} >"$tmp"
mv "$tmp" "$out"
echo "wrote $out"
