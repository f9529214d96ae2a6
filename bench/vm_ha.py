#!/usr/bin/python3
"""The relived HA pair protecting a QEMU VM (TCG), against the same VM unprotected, in one run.

Same hosts, etcd and configurations as bench/ha.py (whose helpers this uses): unprotected (alpha
alone) and epochs at 10, 20, 30 and 40 Hz. The VM is the test guest (scripts/build-guest.sh,
128 MiB, e1000 on relived's tap) at the service address. Measured per configuration:
  echo         round trips per second on one TCP connection to the guest's echo server, one
               line at a time (every reply waits for the epoch that produced it)
  store        requests per second to the guest's line store (a new connection per request)
  compute      the guest's compute loop (relive.spin=1, progress on its serial port): iterations
               per second relative to unprotected, i.e. the share of time the guest runs
  epochs       achieved epochs/s, frozen time per epoch (QMP stop .. cont) avg / max, bytes per
               epoch
  failover     kill -9 of relived and QEMU on alpha under a line-store writer (20 Hz): the longest
               gap between two acknowledged lines, and every acknowledged line checked afterwards
The "+ disk" rows run the same VM with a 16 MiB raw disk (-drive ...,if=virtio) on which the line
store keeps its lines (written and fsynced before each "ok", relive.diskstore=1) while the guest
rewrites the disk's first 16 blocks in a loop (relive.disk=16); their failovers check every
acknowledged line on the disk of the VM that took over (RELIVE_BENCH_VM_HA_DISK=0 leaves them out).
Prints Markdown.  Usage: python3 bench/vm_ha.py   (root; build/ and build/guest as the tests have)
"""
import json, os, re, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ha  # noqa: E402  (hosts, etcd, the Pair driver)

GUEST = os.environ.get("RELIVE_GUEST_DIR", os.path.join(ha.BUILD, "guest"))
SECONDS = float(os.environ.get("RELIVE_BENCH_VM_HA_SECONDS", "8"))
FAILOVERS = int(os.environ.get("RELIVE_BENCH_HA_FAILOVERS", "3"))
DISK = os.environ.get("RELIVE_BENCH_VM_HA_DISK", "1") == "1"

# Runs inside host c: MODE echo|store for SECONDS; prints {"n": ..., "s": ...}.
CLIENT = r"""
import json, socket, sys, time
mode, ip, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
n, t0 = 0, time.time()
if mode == "echo":
    c = socket.create_connection((ip, 7), timeout=10)
    f = c.makefile("rw")
    while time.time() - t0 < secs:
        f.write(f"e{n}\n"); f.flush()
        assert f.readline().strip() == f"e{n}"
        n += 1
else:
    while time.time() - t0 < secs:
        c = socket.create_connection((ip, 9), timeout=10)
        c.sendall(f"b{n}\n".encode())
        assert c.makefile().readline().startswith("ok")
        c.close()
        n += 1
print(json.dumps({"n": n, "s": time.time() - t0}))
"""

# Runs inside host c: writes line k<i> per connection until killed; "i ms" per acknowledged one.
WRITER = r"""
import socket, sys, time
i = 0
while True:
    i += 1
    try:
        c = socket.create_connection((sys.argv[1], 9), timeout=5)
        c.sendall(f"k{i}\n".encode())
        if c.makefile().readline().strip() == f"ok k{i}":
            print(i, int(time.time() * 1000), flush=True)
        c.close()
    except OSError:
        time.sleep(0.01)
"""


def vm_command(spin, work=None, disk=False):
    """The test guest; with `disk`, on a new 16 MiB raw image in `work`."""
    append = f"console=ttyS0 quiet relive.ip={ha.SERVICE}/24" + (" relive.spin=1" if spin else "")
    extra = []
    if disk:
        os.makedirs(work, exist_ok=True)
        image = os.path.join(work, "disk.raw")
        with open(image, "wb") as f:
            f.truncate(16 << 20)
        append += " relive.diskstore=1 relive.disk=16"
        extra = ["-drive", f"file={image},format=raw,if=virtio,id=d0"]
    return ["/usr/bin/qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-display", "none",
            "-vga", "none", "-serial", "file:serial.log", "-kernel", f"{GUEST}/vmlinux",
            "-initrd", f"{GUEST}/initramfs.cpio.gz", "-append", append,
            "-device", "e1000,netdev=relive-net,mac=52:54:00:12:34:56"] + extra


def client(mode):
    r = ha.sh(*ha.ns("c"), "python3", "-c", CLIENT, mode, ha.SERVICE, str(SECONDS))
    j = json.loads(r.stdout)
    return j["n"] / j["s"]


def guest_up():
    # The store answers once the guest has booted and the pair is serving.
    def ok():
        r = ha.sh(*ha.ns("c"), "python3", "-c", CLIENT, "store", ha.SERVICE, "0.1", check=False)
        return r.returncode == 0
    ha.wait_for("the guest's services", ok, 120)


def spin_rate(serial):
    """Guest compute iterations per second over SECONDS, from its serial port."""
    def last():
        text = open(serial, errors="replace").read()
        # Complete lines only: QEMU may be in the middle of writing the last one.
        m = re.findall(r"relive-spin (\d+)\r?\n", text[:text.rfind("\n") + 1])
        return int(m[-1]) if m else None
    ha.wait_for("the guest's compute loop", lambda: last() is not None, 60)
    n0, t0 = last(), time.time()
    time.sleep(SECONDS)
    n1, t1 = last(), time.time()
    return (n1 - n0) / (t1 - t0)


def measure(work, label, epoch_ms, protected, disk=False):
    pair = ha.Pair(work, vm_command(False, work, disk), epoch_ms, protected, kind="vm")
    try:
        pair.start()
        guest_up()
        echo = client("echo")
        store = client("store")
        s = pair.status()[0]
    finally:
        pair.stop()
    spin_pair = ha.Pair(work + "-spin", vm_command(True, work + "-spin", disk), epoch_ms, protected,
                        kind="vm")
    try:
        spin_pair.start()
        rate = spin_rate(os.path.join(spin_pair.dir, "serial.log"))
    finally:
        spin_pair.stop()
    print(f"{label}: echo {echo:.0f}/s store {store:.1f}/s compute {rate:.0f}/s", file=sys.stderr)
    return {"echo": echo, "store": store, "spin": rate, "epochs_per_s": s.get("epochs_per_s"),
            "frozen_avg": s.get("frozen_ms_avg"), "frozen_max": s.get("frozen_ms_max"),
            "epoch_bytes": s.get("epoch_bytes_avg"), "disk_bytes": s.get("disk_bytes_avg")}


def failover(work, epoch_ms, disk=False):
    pair = ha.Pair(work, vm_command(False, work, disk), epoch_ms, True, kind="vm")
    pair.start()
    guest_up()
    acks = os.path.join(work, "acks")
    writer = ha.spawn(ha.ns("c") + ["python3", "-c", WRITER, ha.SERVICE], out=open(acks, "w"))
    count = lambda: len(open(acks).read().splitlines())
    try:
        ha.wait_for("writes", lambda: count() > 20)
        pid = pair.status()[0].get("workload_pid", 0)
        os.killpg(pair.procs["alpha"].pid, signal.SIGKILL)
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
        killed = count()
        ha.wait_for("takeover", lambda: pair.role(1) == "primary", 60)
        ha.wait_for("writes after failover", lambda: count() > killed + 20, 60)
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    lines = [tuple(map(int, l.split())) for l in open(acks).read().splitlines() if l.strip()]
    gap = max(b[1] - a[1] for a, b in zip(lines, lines[1:]))
    dump = ha.sh(*ha.ns("c"), "python3", "-c",
                 "import socket,sys; c=socket.create_connection((sys.argv[1], 9), timeout=10); "
                 "c.sendall(b'DUMP\\n'); sys.stdout.write(c.makefile().read())", ha.SERVICE)
    stored = set(dump.stdout.split())
    missing = sum(1 for k, _ in lines if f"k{k}" not in stored)
    pair.stop()
    return gap, len(lines), missing


def main():
    ha.net_down()
    ha.net_up()
    work = tempfile.mkdtemp(prefix="relive-bench-vm-ha-")
    etcd = ha.start_etcd(work)
    try:
        configs = [("unprotected", 100, False, False)] + [
            (f"{r} Hz", 1000 // r, True, False) for r in ha.RATES]
        if DISK:
            configs += [("unprotected + disk", 100, False, True), ("20 Hz + disk", 50, True, True)]
        res = {label: measure(os.path.join(work, f"m{i}"), label, ms, p, d)
               for i, (label, ms, p, d) in enumerate(configs)}
        fo = [failover(os.path.join(work, f"f{i}"), 50) for i in range(FAILOVERS)]
        fo_disk = [failover(os.path.join(work, f"fd{i}"), 50, True)
                   for i in range(FAILOVERS if DISK else 0)]
    finally:
        os.killpg(etcd.pid, signal.SIGKILL)
        ha.net_down()
        ha.sh("sh", "-c", f"rm -f /dev/shm/relive-ha-{ha.NS}w-*", check=False)
    print("| configuration | epochs/s achieved | frozen per epoch avg / max ms | bytes per epoch "
          "| disk bytes per epoch | echo round trips/s (vs unprot.) "
          "| store requests/s (vs unprot.) | guest compute/s (vs unprot.) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, _, protected, disk in configs:
        r = res[label]
        base = res["unprotected + disk" if disk else "unprotected"]
        print(f"| {label} | {ha.fmt(r['epochs_per_s']) if protected else '-'} "
              f"| {ha.fmt(r['frozen_avg'])} / {ha.fmt(r['frozen_max'])} "
              f"| {ha.fmt(r['epoch_bytes'], '.0f') if protected else '-'} "
              f"| {ha.fmt(r['disk_bytes'], '.0f') if protected and disk else '-'} "
              f"| {r['echo']:.0f} ({r['echo'] / base['echo']:.3f}) "
              f"| {r['store']:.1f} ({r['store'] / base['store']:.3f}) "
              f"| {r['spin']:.0f} ({r['spin'] / base['spin']:.3f}) |")
    print()
    print(f"Failover (20 Hz, line-store writer, kill -9 of relived and QEMU on the primary), "
          f"{FAILOVERS} runs:")
    print()
    print("| run | disk | client-observed outage ms | acknowledged lines | lost |")
    print("|---|---|---|---|---|")
    for i, (gap, n, missing) in enumerate(fo, 1):
        print(f"| {i} | - | {gap} | {n} | {missing} |")
    for i, (gap, n, missing) in enumerate(fo_disk, 1):
        print(f"| {i} | raw 16 MiB, lines on it | {gap} | {n} | {missing} |")
    print()
    print(f"Median client-observed outage: {statistics.median([g for g, _, _ in fo]):.0f} ms "
          f"(lease TTL 1 s, failure timeout 300 ms).")


if __name__ == "__main__":
    sys.exit(main())
