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
  echo "## Every corpus program (tests/integration/corpus_test.cc), one run each"
  echo
  echo "Native run, then record, then replay in the changed environment (inputs deleted, servers"
  echo "gone, no network). Single runs: read them as orders of magnitude. Trace bytes per second"
  echo "of native execution is the log a migration would ship per second of this program's run."
  echo
  metrics=$(mktemp)
  RELIVE_CORPUS_METRICS=$metrics build/tests/integration_corpus_test >/dev/null 2>&1 || true
  echo "| program | native s | record s | record / native | replay s | replay / record | trace bytes | trace KiB per native s |"
  echo "|---|---|---|---|---|---|---|---|"
  awk '{ printf "| %s | %.3f | %.3f | %.1fx | %.3f | %.2fx | %d | %.1f |\n", $1, $2, $3, $3/$2, $4, $4/$3, $5, $5/1024/$2 }' "$metrics"
  rm -f "$metrics"
  echo
  echo "## Container checkpoint/restore vs plain CRIU (issue: relive container)"
  echo
  echo "Both frozen times are CRIU's own statistics. relive runs \`criu dump --leave-stopped\` and"
  echo "kills the tree only once the archive is safely written; plain CRIU kills it within the dump."
  echo
  /usr/bin/python3 bench/container.py
  echo
  echo "## Live migration vs plain CRIU (issue: relive migrate)"
  echo
  echo "Two hosts as network namespaces on one bridge; \`relive migrate --json\` with each strategy"
  echo "against \`criu dump\` + streaming the images across + \`criu restore\` by hand."
  echo
  /usr/bin/python3 bench/migrate.py
  echo
  echo "## HA pair: protected vs unprotected (issue: relived HA pair)"
  echo
  echo "redis-server and a CPU-bound loop protected by relived at 10-40 epochs per second against"
  echo "the same workload with no backup, in one run (bench/ha.py describes the setup)."
  echo
  /usr/bin/python3 bench/ha.py
  echo
  echo "## VM migration: pre-copy, post-copy, auto, TCG log shipping vs QEMU by hand (issue: QEMU VMs)"
  echo
  echo "The test guest (256 MiB, TCG, QEMU 10.0.2) between two network-namespace hosts, relive over"
  echo "TLS; tests/integration/vm_migrate_test.cc's migrations, one run each, in this one run,"
  echo "against QEMU's own migration with its defaults driven by hand (bench/vm_migrate.py)."
  echo
  /usr/bin/python3 bench/vm_migrate.py build
  echo
  echo "## VM HA pair: protected vs unprotected (issue: QEMU VMs)"
  echo
  echo "The test guest (128 MiB, TCG) protected by relived at 10-40 epochs per second against the"
  echo "same VM with no backup, in one run (bench/vm_ha.py describes the setup)."
  echo
  /usr/bin/python3 bench/vm_ha.py
  echo
  echo "## Shared-memory event ring (tracer -> log writer process)"
  echo
  echo '```'
  build/bench/shm_ring_bench
  echo '```'
} >"$tmp"
mv "$tmp" "$out"
echo "wrote $out"
