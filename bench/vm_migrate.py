#!/usr/bin/env python3
"""VM migration strategies side by side on the test guest (scripts/build-guest.sh), one run.

Runs tests/integration/vm_migrate_test.cc's pre-copy, post-copy and log-shipping migrations
(two network-namespace hosts, TLS, a quiet guest; the log-shipping source records with
-icount rr=record) and prints each report's downtime, total time and bytes as a markdown table.
Usage: python3 bench/vm_migrate.py [BUILD_DIR]   (root; build/tests/integration_vm_migrate_test)
"""
import json
import re
import subprocess
import sys

TESTS = ["VmMigrate.PrecopyCounterCarriesOn", "VmMigrate.PostcopyCounterCarriesOn",
         "VmMigrate.LogShippingCounterCarriesOn"]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    run = subprocess.run([f"{build}/tests/integration_vm_migrate_test",
                          "--gtest_filter=" + ":".join(TESTS)],
                         capture_output=True, text=True, timeout=1800)
    reports = {}
    for m in re.finditer(r"^(\S+) report: (\{.*\})$", run.stderr, re.M):
        reports[m.group(1)] = json.loads(m.group(2))
    print("| strategy | downtime ms | total s | bytes | by phase | rounds | note |")
    print("|---|---|---|---|---|---|---|")
    for name in ["precopy", "postcopy", "log-shipping"]:
        r = reports.get(name)
        if r is None:
            print(f"| {name} | failed | | | | | see the test's output |")
            continue
        phases = ", ".join(f"{k} {v}" for k, v in r.get("bytes_by_phase", {}).items())
        vm = r.get("vm", {})
        note = ", ".join(f"{k} {v:.0f}" for k, v in vm.items()
                         if k in ("qemu_downtime_ms", "replay_ms", "savevm_ms", "load_ms"))
        print(f"| {name} | {r['downtime_ms']:.0f} | {r['total_ms'] / 1000:.1f} | {r['bytes_total']} "
              f"| {phases} | {r.get('rounds', 0)} | {note} |")
    if run.returncode != 0:
        print(f"\n(some migrations failed: exit {run.returncode})")


if __name__ == "__main__":
    main()
