#!/usr/bin/env python3
"""VM migration strategies side by side on the test guest (scripts/build-guest.sh), one run.

Runs tests/integration/vm_migrate_test.cc's migrations (two network-namespace hosts; relive over
TLS; a quiet 256 MiB guest unless said otherwise) and prints each report's downtime, total time
and bytes as a markdown table:
  precopy, postcopy, auto   relive migrate --vm --strategy ... (auto converges: pre-copy)
  auto, dirty guest         the guest rewrites 64 MiB in a loop behind a 16 MB/s limit: auto
                            gives up on pre-copy after 5 rounds and turns to post-copy
  log-shipping              the source records (-icount rr=record), relived replays
  QEMU defaults by hand     the baseline: destination QEMU started with -incoming, `migrate
                            tcp:` on the source's QMP, every default, plaintext (bytes: RAM only)
Usage: python3 bench/vm_migrate.py [BUILD_DIR]   (root; build/tests/integration_vm_migrate_test)
"""
import json
import re
import subprocess
import sys

ROWS = [("VmMigrate.PrecopyCounterCarriesOn", "precopy"),
        ("VmMigrate.PostcopyCounterCarriesOn", "postcopy"),
        ("VmMigrate.AutoStaysPrecopyWhenItConverges", "auto"),
        ("VmMigrate.AutoTurnsToPostcopyWhenPrecopyCannotKeepUp", "auto, dirty guest, 16 MB/s"),
        ("VmMigrate.LogShippingCounterCarriesOn", "log-shipping"),
        ("VmMigrate.QemuDefaultsByHandBaseline", "QEMU defaults by hand")]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    run = subprocess.run([f"{build}/tests/integration_vm_migrate_test",
                          "--gtest_filter=" + ":".join(t for t, _ in ROWS)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=2400)
    reports, test = {}, None
    for line in run.stdout.splitlines():
        m = re.match(r"^\[ RUN +\] (\S+)", line)
        if m:
            test = m.group(1)
        m = re.match(r"^(\S+) report: (\{.*\})$", line)
        if m and test:
            reports[test] = json.loads(m.group(2))
    base = reports.get("VmMigrate.QemuDefaultsByHandBaseline")
    print("| strategy | downtime ms | total s | bytes | downtime vs QEMU defaults "
          "| by phase | rounds | note |")
    print("|---|---|---|---|---|---|---|---|")
    for test, label in ROWS:
        r = reports.get(test)
        if r is None:
            print(f"| {label} | failed | | | | | | see the test's output |")
            continue
        phases = ", ".join(f"{k} {v}" for k, v in r.get("bytes_by_phase", {}).items())
        vm = r.get("vm", {})
        note = ", ".join(f"{k} {v:.0f}" for k, v in vm.items()
                         if k in ("qemu_downtime_ms", "replay_ms", "savevm_ms", "load_ms"))
        if r.get("reason"):
            note = (note + "; " if note else "") + r["reason"]
        ratio = (f"{r['downtime_ms'] / base['downtime_ms']:.2f}"
                 if base and base["downtime_ms"] else "-")
        print(f"| {label} | {r['downtime_ms']:.0f} | {r['total_ms'] / 1000:.1f} "
              f"| {r['bytes_total']} | {ratio} | {phases} | {r.get('rounds', 0)} | {note} |")
    if run.returncode != 0:
        print(f"\n(some migrations failed: exit {run.returncode})")


if __name__ == "__main__":
    main()
