#!/usr/bin/python3
"""The relived HA pair against the same workload unprotected, side by side in one run.

Hosts are network namespaces on one bridge (made here, removed at the end): alpha (198.18.70.1)
is the primary, beta (198.18.70.2) the backup, 198.18.70.3 runs etcd (1 s leases) and the
clients. Every configuration runs the same workload through the same path (its own namespace,
veth, service address 198.18.70.10):
  unprotected  relived alpha alone: no backup, output passes at once, no epochs
  N Hz         relived alpha + beta with epoch_ms = 1000 / N, for N = 10, 20, 30, 40
Measured per configuration:
  redis        redis-benchmark -t set,get (50 clients, one request at a time each, then 16
               requests pipelined): requests/s and latency, relative to unprotected
  compute      bench/ha_spin.c (a hashing loop that reports its work every 100 ms): work/s
               relative to unprotected -- the analogue of Remus's kernel-compile figure
  1 GiB        the same loop holding 1 GiB and rewriting 5 % of it per second, unprotected and at
               the highest rate (RELIVE_BENCH_HA_BIG_MIB sets the size; 0 leaves it out)
  epochs       achieved epochs/s, frozen time per epoch (p50, p99, max over the last 5 s), bytes
               per epoch, and how many epochs were fast ones (pages and registers only, no CRIU)
  failover     kill -9 of relived and the workload on alpha under a verifying writer
               (tests/subjects/redis_writer.c): the longest gap between two acknowledged writes
               is the outage the client saw; every acknowledged write is then checked
Prints Markdown.
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns_hosts  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("RELIVE_BUILD", os.path.join(ROOT, "build"))
RELIVE = os.path.join(BUILD, "bin", "relive")
RELIVED = os.path.join(BUILD, "bin", "relived")
SPIN = os.path.join(BUILD, "bench", "ha_spin")
WRITER = os.path.join(BUILD, "tests", "subjects", "redis_writer")
RATES = [int(r) for r in os.environ.get("RELIVE_BENCH_HA_RATES", "10 20 30 40").split()]
# One request at a time per client waits for an epoch per request: fewer requests there.
REQUESTS = int(os.environ.get("RELIVE_BENCH_HA_REQUESTS", "3000"))
PIPELINED_REQUESTS = int(os.environ.get("RELIVE_BENCH_HA_PIPELINED_REQUESTS", "20000"))
FAILOVERS = int(os.environ.get("RELIVE_BENCH_HA_FAILOVERS", "3"))
# RELIVE_BENCH_HA_ONLY=failover runs the failover runs alone (no throughput configurations).
ONLY = os.environ.get("RELIVE_BENCH_HA_ONLY", "")
BIG_MIB = int(os.environ.get("RELIVE_BENCH_HA_BIG_MIB", "1024"))
NS = f"rlha{os.getpid() % 100000}"
A, B, C = "198.18.70.1", "198.18.70.2", "198.18.70.3"
SERVICE, PORT = "198.18.70.10", 16579
KEYS = None  # the pair's key directory, made by main()


HOSTS = netns_hosts.Hosts(NS, 70)
sh = netns_hosts.sh
ns = HOSTS.ns
net_up = HOSTS.up


def net_down():
    HOSTS.down()
    for p in ("alpha", "beta"):
        sh("ip", "netns", "del", f"{NS}w-{p}", check=False)


def spawn(argv, out=subprocess.DEVNULL, err=subprocess.DEVNULL):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            start_new_session=True)


def wait_for(what, fn, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError(f"no {what} after {timeout} s")


class Pair:
    """relived alpha (and beta when protected) serving `command` at `epoch_ms`."""

    def __init__(self, work, command, epoch_ms, protected, kind="process", fence_ms=None):
        self.work, self.protected = work, protected
        fence = "" if fence_ms is None else f"fence_ms = {fence_ms}\n"
        self.cfg = os.path.join(work, "pair.toml")
        self.dir = os.path.join(work, "w")
        os.makedirs(self.dir, exist_ok=True)
        with open(self.cfg, "w") as f:
            f.write(f"""tls_dir = "{KEYS}"
epoch_ms = {epoch_ms}
heartbeat_ms = 50
failure_timeout_ms = 300
[[peers]]
name = "alpha"
address = "{A}:7411"
[[peers]]
name = "beta"
address = "{B}:7411"
[etcd]
endpoints = ["http://{C}:2379"]
lease_key = "/relive/bench/{NS}"
lease_ttl_s = 1
{fence}[workload]
kind = "{kind}"
command = {json.dumps(command)}
directory = "{self.dir}"
service_address = "{SERVICE}/24"
netns = "{NS}w"
""")
        self.procs = {}

    def start(self):
        self.start_peer("alpha", "a")
        wait_for("primary", lambda: self.role(0) == "primary")
        if self.protected:
            self.start_peer("beta", "b")
            wait_for("protection", lambda: self.status()[0].get("protection") == "protected"
                     and self.status()[0].get("committed_epoch", 0) > 3)

    def start_peer(self, name, host):
        err = open(os.path.join(self.work, f"{name}.err"), "a")
        self.procs[name] = spawn(ns(host) + [RELIVED, "--ha-config", self.cfg, "--name", name,
                                             "--state-dir", os.path.join(self.work, "s-" + name)],
                                 err=err)

    def status(self):
        r = sh(*ns("c"), RELIVE, "ha", "status", "--config", self.cfg, "--name", "alpha", "--json",
               check=False)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return [{}, {}]

    def role(self, i):
        s = self.status()
        return s[i].get("role") if len(s) == 2 else None

    def stop(self):
        pid = self.status()[0].get("workload_pid", 0)
        for p in self.procs.values():
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        if pid > 0:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("pkill", "-9", "-f", f"redis-server \\*:{PORT}", check=False)
        sh("pkill", "-9", "-f", SPIN, check=False)
        sh("pkill", "-9", "-f", f"relive-ha-{NS}w-", check=False)  # VMs, by their RAM files
        # The next configuration must not wait for this one's lease to run out.
        sh(*ns("c"), "curl", "-s", "-X", "POST", f"http://{C}:2379/v3/kv/deleterange", "-d",
           json.dumps({"key": __import__("base64").b64encode(f"/relive/bench/{NS}".encode()).decode()}),
           check=False)
        time.sleep(0.5)


def redis_bench(pipeline):
    r = sh(*ns("c"), "redis-benchmark", "-h", SERVICE, "-p", str(PORT), "-t", "set,get", "-n",
           str(REQUESTS if pipeline == 1 else PIPELINED_REQUESTS), "-c", "50", "-P", str(pipeline),
           "--csv", check=False, timeout=900)
    rows = {}
    for line in r.stdout.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells[0] in ("SET", "GET"):
            rows[cells[0]] = (float(cells[1]), float(cells[2]), float(cells[5]))  # rps, avg, p95
    return rows


def epoch_figures(s):
    """The primary's epoch figures from `relive ha status --json`."""
    return {"epochs_per_s": s.get("epochs_per_s", 0), "frozen_avg": s.get("frozen_ms_avg"),
            "frozen_p50": s.get("frozen_ms_p50"), "frozen_p99": s.get("frozen_ms_p99"),
            "frozen_max": s.get("frozen_ms_max"), "fast": s.get("fast_epochs", 0),
            "epochs": s.get("epochs", 0), "slow": s.get("slow_path_epochs", [])}


def slow_reason(line):
    """'epoch 12: CRIU dump: process 1: fd set changed' -> 'CRIU dump: process 1: fd set changed'
    without addresses, so that the same reason reads the same."""
    import re
    reason = line.split(": ", 1)[-1]
    return re.sub(r"\(7f[0-9a-f-]+ .*?\)|fd \d+", lambda m: "fd N" if m.group(0).startswith("fd")
                  else "(...)", reason)


def fast_share(r):
    return f"{r['fast']}/{r['epochs']}" if r.get("epochs") else "-"


def redis_config(work, label, epoch_ms, protected):
    pair = Pair(work, ["/usr/bin/redis-server", "--port", str(PORT), "--save", "",
                       "--appendonly", "no", "--protected-mode", "no"], epoch_ms, protected)
    pair.start()
    try:
        result = {"single": redis_bench(1), "pipelined": redis_bench(16)}
        s = pair.status()[0]
        result.update(epoch_figures(s))
        result["epoch_bytes"] = s.get("epoch_bytes_avg")
        return result
    finally:
        pair.stop()


def spin_config(work, epoch_ms, protected, seconds=8, args=()):
    pair = Pair(work, [SPIN, *args], epoch_ms, protected)
    pair.start()
    try:
        prog = os.path.join(pair.dir, "progress")
        read = lambda: int(open(prog).read().split()[0])
        wait_for("progress", lambda: os.path.exists(prog) and os.path.getsize(prog) > 0)
        time.sleep(1)
        t0, u0 = time.time(), read()
        time.sleep(seconds)
        t1, u1 = time.time(), read()
        s = pair.status()[0]
        return {"rate": (u1 - u0) / (t1 - t0), **epoch_figures(s)}
    finally:
        pair.stop()


def failover(work, epoch_ms, fence_ms=None):
    pair = Pair(work, ["/usr/bin/redis-server", "--port", str(PORT), "--save", "",
                       "--appendonly", "yes", "--protected-mode", "no"], epoch_ms, True,
                fence_ms=fence_ms)
    pair.start()
    acks = os.path.join(work, "acks")
    out = open(acks, "w")
    writer = spawn(ns("c") + [WRITER, "write", SERVICE, str(PORT), "k"], out=out)
    try:
        wait_for("writes", lambda: len(open(acks).read().splitlines()) > 30)
        pid = pair.status()[0].get("workload_pid", 0)
        os.killpg(pair.procs["alpha"].pid, signal.SIGKILL)
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
        killed = len(open(acks).read().splitlines())
        wait_for("takeover", lambda: pair.role(1) == "primary", 60)
        wait_for("writes after failover", lambda: len(open(acks).read().splitlines()) > killed + 30)
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    lines = [tuple(map(int, l.split())) for l in open(acks).read().splitlines() if l.strip()]
    gap = max(b[1] - a[1] for a, b in zip(lines, lines[1:]))
    v = subprocess.run(ns("c") + [WRITER, "verify", SERVICE, str(PORT), "k"], stdin=open(acks),
                       capture_output=True, text=True)
    pair.stop()
    # The backup's takeover timeline (backup_role.cc logs it), to show where the outage went.
    timeline = [l.strip() for l in open(os.path.join(work, "beta.err"), errors="replace")
                if "took over in" in l or "restore: images" in l]
    return gap, len(lines), v.stdout.strip().splitlines()[-1], timeline


def start_etcd(work):
    """etcd on host c with 1 s leases, and the pair's keys (KEYS); returns etcd's process."""
    global KEYS
    # etcd's data in memory: its WAL fsyncs must not queue behind the checkpoints' writeback on
    # this one disk (in production etcd runs on hosts of its own).
    data = tempfile.mkdtemp(prefix="relive-bench-ha-etcd-", dir="/dev/shm")
    etcd = spawn(ns("c") + ["etcd", "--name", "b", "--data-dir", data,
                            "--listen-client-urls", f"http://{C}:2379", "--advertise-client-urls",
                            f"http://{C}:2379", "--listen-peer-urls", "http://127.0.0.1:2380",
                            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                            "--initial-cluster", "b=http://127.0.0.1:2380",
                            "--heartbeat-interval", "10", "--election-timeout", "100"])
    etcd.data_dir = data
    KEYS = os.path.join(work, "keys")
    try:
        sh(RELIVE, "keys", "init", KEYS, "--hosts", "alpha,beta")
        wait_for("etcd", lambda: sh(*ns("c"), "curl", "-sf", f"http://{C}:2379/health",
                                    check=False).returncode == 0)
    except BaseException:
        os.killpg(etcd.pid, signal.SIGKILL)
        raise
    return etcd


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def main():
    net_down()
    net_up()
    work = tempfile.mkdtemp(prefix="relive-bench-ha-")
    etcd = start_etcd(work)
    try:
        configs = [("unprotected", 100, False)] + [(f"{r} Hz", 1000 // r, True) for r in RATES]
        if ONLY == "failover":
            configs = []
        redis, spin = {}, {}
        for label, epoch_ms, protected in configs:
            redis[label] = redis_config(os.path.join(work, "r" + label[:3].strip()), label,
                                        epoch_ms, protected)
            spin[label] = spin_config(os.path.join(work, "s" + label[:3].strip()), epoch_ms,
                                      protected)
        big = {}
        if configs and BIG_MIB > 0:
            for label, epoch_ms, protected in [configs[0], configs[-1]]:
                big[label] = spin_config(os.path.join(work, "m" + label[:3].strip()), epoch_ms,
                                         protected, seconds=10, args=(str(BIG_MIB), "5"))
        # Side by side, interleaved: the backup takes over once the primary's key stood still
        # for fence_ms (its default, half the TTL), and with fence_ms = 0, once etcd expired
        # the primary's lease.
        fo, fo_expiry = [], []
        for i in range(FAILOVERS):
            fo_expiry.append(failover(os.path.join(work, f"e{i}"), 50, fence_ms=0))
            fo.append(failover(os.path.join(work, f"f{i}"), 50))
    finally:
        os.killpg(etcd.pid, signal.SIGKILL)
        etcd.wait()
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
        net_down()
    if configs:
        print_throughput(configs, redis, spin)
    if big:
        print_big(big)
    if fo:
        print_failover(fo, fo_expiry)


def print_throughput(configs, redis, spin):
    base = redis["unprotected"]
    print("| configuration | epochs/s achieved | fast epochs | frozen per epoch p50 / p99 / max ms "
          "| bytes per epoch "
          "| SET rps (vs unprot.) | GET rps | SET avg / p95 ms | pipelined SET rps (vs unprot.) "
          "| compute work/s (vs unprot.) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, _, _ in configs:
        r, s = redis[label], spin[label]
        set1, get1 = r["single"].get("SET", (0, 0, 0)), r["single"].get("GET", (0, 0, 0))
        setp = r["pipelined"].get("SET", (0, 0, 0))
        b1 = base["single"].get("SET", (1, 0, 0))[0] or 1
        bp = base["pipelined"].get("SET", (1, 0, 0))[0] or 1
        bs = spin["unprotected"]["rate"] or 1
        protected = label != "unprotected"
        print(f"| {label} | {fmt(r['epochs_per_s']) if protected else '-'} "
              f"| {fast_share(r) if protected else '-'} "
              f"| {fmt(r['frozen_p50'])} / {fmt(r['frozen_p99'])} / {fmt(r['frozen_max'])} "
              f"| {fmt(r['epoch_bytes'], '.0f') if protected else '-'} "
              f"| {set1[0]:.0f} ({set1[0] / b1:.3f}) | {get1[0]:.0f} "
              f"| {set1[1]:.1f} / {set1[2]:.1f} | {setp[0]:.0f} ({setp[0] / bp:.3f}) "
              f"| {s['rate']:.0f} ({s['rate'] / bs:.3f}) |")
    print()
    for label, _, _ in configs[1:]:
        reasons = sorted({slow_reason(x) for x in redis[label].get("slow", [])})
        print(f"redis at {label}, the last CRIU epochs' reasons: " + ("; ".join(reasons) or "-"))
    print()
    print("Compute workload under protection: "
          + ", ".join(f"{l}: {fmt(spin[l]['epochs_per_s'])} epochs/s ({fast_share(spin[l])} "
                      f"fast), frozen {fmt(spin[l]['frozen_p50'])} ms p50 / "
                      f"{fmt(spin[l]['frozen_p99'])} p99" for l, _, _ in configs[1:]))
    print()


def print_big(big):
    print(f"The compute loop holding {BIG_MIB} MiB and rewriting 5 % of it per second:")
    print()
    print("| configuration | work/s (vs unprot.) | epochs/s | fast epochs "
          "| frozen p50 / p99 / max ms |")
    print("|---|---|---|---|---|")
    base = big[next(iter(big))]["rate"] or 1
    for label, r in big.items():
        protected = label != "unprotected"
        print(f"| {label} | {r['rate']:.0f} ({r['rate'] / base:.3f}) "
              f"| {fmt(r['epochs_per_s']) if protected else '-'} "
              f"| {fast_share(r) if protected else '-'} "
              f"| {fmt(r['frozen_p50'])} / {fmt(r['frozen_p99'])} / {fmt(r['frozen_max'])} |")
    print()


def print_failover(fo, fo_expiry):
    print(f"Failover (20 Hz, redis with AOF, verifying writer, kill -9 of relived and the workload "
          f"on the primary), {FAILOVERS} runs each, interleaved; lease TTL 1 s, failure timeout "
          f"300 ms:")
    print()
    print("| takeover | run | client-observed outage ms | acknowledged writes | verification |")
    print("|---|---|---|---|---|")
    for label, runs in (("fence_ms 0 (etcd expiry)", fo_expiry),
                        ("fence_ms default (500)", fo)):
        for i, (gap, n, verdict, _) in enumerate(runs, 1):
            print(f"| {label} | {i} | {gap} | {n} | {verdict} |")
    print()
    for label, runs in (("expiry", fo_expiry), ("fence", fo)):
        for i, (_, _, _, timeline) in enumerate(runs, 1):
            for line in timeline:
                print(f"- {label} run {i}: {line}")
    print()
    m = statistics.median([g for g, _, _, _ in fo])
    e = statistics.median([g for g, _, _, _ in fo_expiry])
    print(f"Median client-observed outage: {m:.0f} ms with the fence, {e:.0f} ms with etcd's "
          f"expiry ({m / e:.2f}x).")


if __name__ == "__main__":
    sys.exit(main())
