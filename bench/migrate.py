#!/usr/bin/python3
"""Live migration against plain CRIU, side by side in one run.

Two hosts are network namespaces joined by a bridge (made here, removed at the end): the source
(198.18.0.1) runs the workload and `relive migrate`, the destination (198.18.0.2) runs `relived`;
a third namespace (198.18.0.3) runs the load generator of the server workload. Processes enter a
namespace with `nsenter --net` only (`ip netns exec` would give them a mount namespace CRIU cannot
dump). Workloads:
  write-heavy  bench/migrate_mem.c write: 256 MiB of random bytes, PAGES_PER_TICK pages dirtied
               every 100 ms
  read-mostly  bench/migrate_mem.c read: the same array, filled once, then only read
  redis        redis-server holding ~100 MB, redis-benchmark against it during the migration,
               on a service address that moves with it (--service-address, --tcp-established)
Each is migrated with relive stop-copy, precopy and postcopy (`relive migrate --json`), and with
plain CRIU by hand: `criu dump`, the images streamed across the bridge (tar | socat), `criu
restore --restore-detached` at the destination. Plain CRIU's downtime is the wall time from the
dump's start to the restore's end; the memory subjects check every page after each migration.
`--max-bandwidth B/s` (or RELIVE_BENCH_MIGRATE_CAPS="B/s ...") runs every workload once more per
cap, with relive's strategies under `relive migrate --max-bandwidth` side by side (plain CRIU has
no rate option and runs uncapped only); the tables show the achieved link rate from the report.
Prints Markdown.

`bench/migrate.py --concurrent` measures relived's concurrency instead (issue 17): four
migrations (two stop-copy, one precopy, one crtr) of bench/migrate_mem.c write subjects
(RELIVE_BENCH_CONCURRENT_MIB each, dirtying SWEEP_DIRTY pages per 100 ms) into one relived, first
one after another, then all four at once; prints both wall times and their ratio.
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns_hosts  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("RELIVE_BUILD", os.path.join(ROOT, "build"))
RELIVE = os.path.join(BUILD, "bin", "relive")
RELIVED = os.path.join(BUILD, "bin", "relived")
SUBJECT = os.environ.get("RELIVE_BENCH_MIGRATE_SUBJECT", os.path.join(BUILD, "bench", "migrate_mem"))
CRIU = os.environ.get("RELIVE_CRIU", "/opt/relive/criu/sbin/criu")
RUNS = int(os.environ.get("RELIVE_BENCH_MIGRATE_RUNS", "1"))
MIB = int(os.environ.get("RELIVE_BENCH_MIGRATE_MIB", "256"))
# The write-heavy subject mutates continuously: 10000 pages per 100 ms is ~400 MB/s of dirtied
# memory, more than the link moves (what CR/TR-Motion is for). The container sweep (below) uses
# a milder 2000 pages per 100 ms, which pre-copy can chase.
PAGES_PER_TICK = int(os.environ.get("RELIVE_BENCH_MIGRATE_DIRTY", "10000"))
SWEEP_DIRTY = int(os.environ.get("RELIVE_BENCH_CONTAINER_DIRTY", "2000"))
SWEEP_MIB = [int(m) for m in os.environ.get("RELIVE_BENCH_CONTAINER_MIB", "64 512 2048").split()]
SWEEP_METHODS = ["plain CRIU", "stop-copy", "precopy", "postcopy"]
# CR/TR's downtime by memory size (the write-heavy subject, its dirty rate unchanged).
CRTR_MIB = [int(m) for m in os.environ.get("RELIVE_BENCH_CRTR_MIB", "64 256 1024").split()]
WORKLOADS = os.environ.get("RELIVE_BENCH_MIGRATE_WORKLOADS", "write read redis").split()
ENV = dict(os.environ, CRIU_FAULT="130")  # hardware breakpoints never fire on these VMs
# CRIU 4.1.1 cannot dump inet sockets on kernels >= 6.16 without relive's sockopt shim
# (src/container/criu_sockopt_shim.c); plain CRIU gets it too, or it could not move redis at all.
SHIM = os.path.join(BUILD, "lib", "relive", "librelive_criu_sockopt_shim.so")
CRIU_ENV = dict(ENV, LD_PRELOAD=SHIM) if os.path.exists(SHIM) else ENV
# Images in flight live in memory for every method (relive's default is /dev/shm too).
IMAGE_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None
NS = f"rlbm{os.getpid() % 100000}"
SRC, DST, CLIENT = "198.18.0.1", "198.18.0.2", "198.18.0.3"
SERVICE = "198.18.0.100"
PORT = 7070
METHODS = ["plain CRIU", "stop-copy", "precopy", "postcopy", "crtr", "auto"]
# A subset, e.g. RELIVE_BENCH_MIGRATE_METHODS="precopy crtr" (the ratio columns need precopy).
if os.environ.get("RELIVE_BENCH_MIGRATE_METHODS"):
    METHODS = [m for m in METHODS
               if m.replace(" ", "-") in os.environ["RELIVE_BENCH_MIGRATE_METHODS"].split()]
# RELIVE_BENCH_MIGRATE_VERBOSE=1: each relive migration's progress lines on stderr.
VERBOSE = bool(os.environ.get("RELIVE_BENCH_MIGRATE_VERBOSE"))
# Bandwidth caps (bytes/s) to run besides no cap: `--max-bandwidth B/s` on the command line
# (repeatable) or RELIVE_BENCH_MIGRATE_CAPS.
CAPS = [0] + [int(c) for c in os.environ.get("RELIVE_BENCH_MIGRATE_CAPS", "").split()]


HOSTS = netns_hosts.Hosts(NS, 0)
sh = netns_hosts.sh
ns = HOSTS.ns
net_up = HOSTS.up
net_down = HOSTS.down


def wait_for(what, fn, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.02)
    raise RuntimeError(f"no {what} after {timeout} s")


def spawn(argv):
    """Starts a workload process in its own session and reaps it as soon as it ends: a
    migrated process's pid must be free at once, since the destination restores it (CRIU keeps
    pids) on this same machine."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    p.reaper = threading.Thread(target=p.wait, daemon=True)
    p.reaper.start()
    return p


def read_text(path):
    try:
        return open(path).read()
    except FileNotFoundError:
        return ""


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, TypeError):
        pass


class MemoryWorkload:
    """bench/migrate_mem.c in `mode`; verify() checks every page after the migration."""

    def __init__(self, mode, mib=None, dirty=None, tree=False):
        self.mode, self.mib, self.dirty = mode, mib or MIB, dirty or PAGES_PER_TICK
        # `relive container migrate --pid` moves the whole tree; the subject is its only member.
        self.migrate_flags = ["--container"] if tree else []

    def start(self, work):
        self.result = os.path.join(work, "result")
        self.proc = spawn(ns("a") + [SUBJECT, self.mode, self.result, str(self.mib),
                                     str(self.dirty)])
        wait_for("READY", lambda: read_text(self.result).startswith("READY"))
        time.sleep(1)  # a second of steady state before migrating
        return self.proc.pid

    def gone(self):
        self.proc.reaper.join()  # migrated or dumped away

    def verify(self, pid):
        os.kill(pid, signal.SIGUSR1)
        text = wait_for("result", lambda: read_text(self.result) if read_text(self.result)
                        .startswith(("OK", "FAIL")) else "", timeout=60)
        if not text.startswith("OK"):
            raise RuntimeError(f"{self.mode} subject after migration: {text.strip()}")

    def stop(self, pid):
        kill(pid)
        if self.proc.poll() is None:
            kill(self.proc.pid)
        self.proc.reaper.join()

    criu_flags = []

    def before_dump(self):
        pass

    def before_restore(self):
        pass


class RedisWorkload:
    """redis-server on the service address with ~100 MB of data, redis-benchmark hitting it."""

    migrate_flags = ["--service-address", f"{SERVICE}/24", "--tcp-established"]
    # As relive does: our own iptables lock on the service address instead of CRIU's.
    criu_flags = ["--tcp-established", "--network-lock", "skip"]

    def before_dump(self):
        sh(*ns("a"), "iptables", "-I", "INPUT", "-d", SERVICE, "-j", "DROP")
        sh(*ns("a"), "iptables", "-I", "OUTPUT", "-s", SERVICE, "-j", "DROP")

    def start(self, work):
        self.proc = self.bench = None
        sh("ip", "-n", NS + "a", "addr", "add", f"{SERVICE}/24", "dev", "va")
        self.proc = spawn(ns("a") + ["redis-server", "--bind", SERVICE, "--port", "6379", "--save",
                                     "", "--appendonly", "no", "--protected-mode", "no",
                                     "--enable-debug-command", "yes", "--dir", work])
        # The client may still hold the ARP entry of the host the last run migrated it to.
        sh("ip", "-n", NS + "c", "neigh", "flush", "all", check=False)
        cli = ns("c") + ["redis-cli", "-h", SERVICE]
        wait_for("redis", lambda: sh(*cli, "ping", check=False).stdout.strip() == "PONG", 30)
        sh(*cli, "debug", "populate", "100000", "key", "1000")
        self.bench = spawn(ns("c") + ["redis-benchmark", "-h", SERVICE, "-c", "4", "-n",
                                      "100000000", "-r", "100000", "-d", "100", "-t", "set,get",
                                      "-l", "-q"])
        time.sleep(2)
        return self.proc.pid

    def gone(self):
        self.proc.reaper.join()

    def before_restore(self):
        """Plain CRIU by hand: the address moves from the source to the destination."""
        sh("ip", "-n", NS + "a", "addr", "del", f"{SERVICE}/24", "dev", "va", check=False)
        sh("ip", "-n", NS + "b", "addr", "add", f"{SERVICE}/24", "dev", "vb")

    def verify(self, pid):
        sh("ip", "-n", NS + "c", "neigh", "flush", "all", check=False)
        out = sh(*ns("c"), "redis-cli", "-h", SERVICE, "dbsize", check=False, timeout=30).stdout
        if not out.strip().isdigit() or int(out) < 100000:
            raise RuntimeError(f"redis after migration: dbsize {out.strip()!r}")
        if self.bench.poll() is not None:
            raise RuntimeError("redis-benchmark stopped during the migration")

    def stop(self, pid):
        for p in (self.bench, self.proc):
            if p is None:
                continue
            if p.poll() is None:
                kill(p.pid)
            p.reaper.join()
        kill(pid)
        for h, dev in (("a", "va"), ("b", "vb")):
            sh("ip", "-n", NS + h, "addr", "del", f"{SERVICE}/24", "dev", dev, check=False)
            sh(*ns(h), "iptables", "-F", check=False)  # the hosts' private namespaces


def relive_migrate(workload, strategy, pid, cap=0):
    flags = [f for f in workload.migrate_flags if f != "--container"]
    if cap:
        flags += ["--max-bandwidth", str(cap)]
    cmd = ["container", "migrate"] if "--container" in workload.migrate_flags else ["migrate"]
    r = sh(*ns("a"), RELIVE, *cmd, "--pid", str(pid), "--to", f"{DST}:{PORT}", "--strategy",
           strategy, "--tls-dir", KEYS, "--name", "a", "--peer-name", "b", "--json",
           *flags, check=False, env=ENV, timeout=900)
    if VERBOSE:
        print(r.stderr, file=sys.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"relive migrate --strategy {strategy}: {r.stderr.strip()[-400:]}")
    report = json.loads(r.stdout)
    # What travelled after the first full copy of the memory: pre-copy's first round, CR/TR's
    # checkpoint (the other strategies copy the memory once: all of it counts).
    phases = report.get("bytes_by_phase", {})
    first = phases.get("first_copy", phases.get("checkpoint", 0))
    return dict(downtime=report["downtime_ms"], total=report["total_ms"],
                bytes=report["bytes_total"], after_first=report["bytes_total"] - first,
                rounds=report.get("rounds", 0),
                pid=report.get("destination_pid") or pid, rate=report.get("link_rate", 0),
                chose=f"{report['strategy']} ({report.get('reason', '')})")


def criu_errors(log):
    text = read_text(log)
    if os.environ.get("RELIVE_BENCH_MIGRATE_KEEP_LOG"):
        open(os.environ["RELIVE_BENCH_MIGRATE_KEEP_LOG"], "w").write(text)
    lines = [l for l in text.splitlines() if "Error" in l]
    return "; ".join(lines[-3:]) or "no error in " + log


def plain_criu(workload, pid, work):
    src, dst = os.path.join(work, "img"), os.path.join(work, "dst")
    os.mkdir(src)
    os.mkdir(dst)
    # The receiver listens before the clock starts, as an ssh session would be open already.
    recv = subprocess.Popen(ns("b") + ["sh", "-c", f"socat -u TCP-LISTEN:7171,reuseaddr - | "
                                                   f"tar -C {dst} -xf -"],
                            stdout=subprocess.DEVNULL, start_new_session=True)
    wait_for("receiver", lambda: sh(*ns("b"), "ss", "-ltn", "sport = :7171").stdout.count("\n") > 1)
    t0 = time.perf_counter()
    workload.before_dump()
    r = sh(*ns("a"), CRIU, "dump", "-t", str(pid), "-D", src, "-o", "dump.log", "-v4",
           *workload.criu_flags, check=False, env=CRIU_ENV)
    if r.returncode != 0:
        os.killpg(recv.pid, signal.SIGKILL)
        recv.wait()
        raise RuntimeError(f"criu dump: {criu_errors(os.path.join(src, 'dump.log'))}")
    workload.gone()
    sh("sh", "-c", f"tar -C {src} -cf - . | {' '.join(ns('a'))} socat -u - TCP:{DST}:7171")
    if recv.wait() != 0:
        raise RuntimeError("image transfer failed")
    workload.before_restore()
    pidfile = os.path.join(work, "pid")
    r = sh(*ns("b"), CRIU, "restore", "-D", dst, "-o", "restore.log", "--restore-detached",
           "--pidfile", pidfile, *workload.criu_flags, check=False, env=CRIU_ENV)
    t1 = time.perf_counter()
    if r.returncode != 0:
        raise RuntimeError(f"criu restore: {criu_errors(os.path.join(dst, 'restore.log'))}")
    size = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src))
    ms = (t1 - t0) * 1000
    return dict(downtime=ms, total=ms, bytes=size, rounds=1, pid=int(read_text(pidfile)))


def one_run(workload, method, cap=0):
    work = tempfile.mkdtemp(prefix="relive-bench-mig-", dir=IMAGE_ROOT)
    os.chmod(work, 0o755)
    pid = new_pid = None
    try:
        pid = workload.start(work)
        if method == "plain CRIU":
            row = plain_criu(workload, pid, work)
        else:
            row = relive_migrate(workload, method, pid, cap)
            workload.gone()
        new_pid = row["pid"]
        workload.verify(new_pid)
        return row
    finally:
        workload.stop(new_pid or pid)
        shutil.rmtree(work, ignore_errors=True)


def start_relived(work):
    global KEYS
    KEYS = os.path.join(work, "keys")
    sh(RELIVE, "keys", "init", KEYS, "--hosts", "a,b")
    log = open(os.path.join(work, "relived.err"), "w")
    d = subprocess.Popen(ns("b") + [RELIVED, "--listen", f"{DST}:{PORT}", "--tls-dir", KEYS,
                                    "--name", "b", "--state-dir", os.path.join(work, "state")],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=ENV,
                         start_new_session=True)
    wait_for("relived", lambda: "listening" in read_text(log.name), 30)
    return d


def median_row(rows):
    row = {k: statistics.median(r.get(k, 0) for r in rows)
           for k in ("downtime", "total", "bytes", "after_first", "rounds", "rate")}
    row["chose"] = rows[-1].get("chose", "")
    return row


def measure():
    names = {"write": "write-heavy (migrate_mem write)", "read": "read-mostly (migrate_mem read)",
             "redis": "redis-server + redis-benchmark"}
    makers = {"write": lambda: MemoryWorkload("write"), "read": lambda: MemoryWorkload("read"),
              "redis": RedisWorkload}
    results = {}
    for cap in CAPS:
        # Plain CRIU has no rate option: it runs in the uncapped pass only.
        methods = METHODS if not cap else [m for m in METHODS if m != "plain CRIU"]
        for w in WORKLOADS:
            rows = {m: [] for m in methods}
            errors = {}
            for run in range(RUNS):
                for m in methods:  # interleaved: one of each method per round
                    if m in errors:
                        continue
                    try:
                        rows[m].append(one_run(makers[w](), m, cap))
                    except Exception as e:  # a failed method is reported, the others still run
                        errors[m] = str(e).replace("\n", " ").replace("|", "/")[:300]
                    print(f"migrate bench: {w} cap={cap} {m} run {run + 1}: "
                          f"{rows[m][-1] if m not in errors else errors[m]}", file=sys.stderr)
            name = names[w] + (f", capped at {cap / 1e6:g} MB/s" if cap else "")
            results[name] = ({m: median_row(r) for m, r in rows.items() if r}, errors,
                             {m: len(r) for m, r in rows.items()})
    return results


def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


def measure_sweep():
    """Container (process tree) migration at several sizes: the issue's frozen-time goal."""
    results = {}
    for mib in SWEEP_MIB:
        rows, errors = {}, {}
        for m in SWEEP_METHODS:
            try:
                rows[m] = one_run(MemoryWorkload("write", mib, SWEEP_DIRTY, tree=True), m)
            except Exception as e:
                errors[m] = str(e).replace("\n", " ").replace("|", "/")[:300]
            print(f"migrate bench: container {mib} MiB {m}: {rows.get(m) or errors.get(m)}",
                  file=sys.stderr)
        results[mib] = (rows, errors)
    return results


def print_sweep(results):
    print("\n### Container migration by size (issue: relive container)\n")
    print("`relive container migrate --pid` of a tree whose process holds N MiB and dirties "
          f"{SWEEP_DIRTY} pages per 100 ms, against plain `criu dump` + streaming the images + "
          "`criu restore`. One run each. Goal: pre-copy and post-copy frozen time <= 40 % of plain "
          "CRIU's.\n")
    print("| memory | method | frozen (downtime) ms | total ms | MB on the wire | rounds | frozen / plain CRIU |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for mib, (rows, errors) in results.items():
        plain = rows.get("plain CRIU")
        for m in SWEEP_METHODS:
            if m not in rows:
                print(f"| {mib} MiB | {m} | failed | | | | |")
                notes.append(f"{mib} MiB, {m} failed: {errors.get(m, '')}")
                continue
            r = rows[m]
            print(f"| {mib} MiB | {m} | {r['downtime']:.0f} | {r['total']:.0f} | {r['bytes'] / 1e6:.1f} "
                  f"| {r['rounds']:.0f} | {ratio(r['downtime'], plain['downtime']) if plain else '-'} |")
    for n in notes:
        print(f"\n- {n}")


def print_tables(results):
    print("| workload | method | downtime ms | total ms | MB on the wire | MB after the first copy "
          "| rounds | downtime / plain CRIU | downtime / precopy | total / plain CRIU "
          "| bytes / plain CRIU | link MB/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for name, (medians, errors, counts) in results.items():
        plain, pre = medians.get("plain CRIU"), medians.get("precopy")
        for m in METHODS:
            if m not in medians:
                if m in errors or not name.endswith("MB/s"):
                    print(f"| {name} | {m} | failed | | | | | | | | | |")
                continue
            r = medians[m]
            rate = f"{r['rate'] / 1e6:.1f}" if m != "plain CRIU" else "-"
            after = f"{r['after_first'] / 1e6:.1f}" if m != "plain CRIU" else "-"
            print(f"| {name} | {m} | {r['downtime']:.0f} | {r['total']:.0f} | {r['bytes'] / 1e6:.1f} "
                  f"| {after} | {r['rounds']:.0f} | {ratio(r['downtime'], plain['downtime']) if plain else '-'} "
                  f"| {ratio(r['downtime'], pre['downtime']) if pre else '-'} "
                  f"| {ratio(r['total'], plain['total']) if plain else '-'} "
                  f"| {ratio(r['bytes'], plain['bytes']) if plain else '-'} "
                  f"| {rate} |")
            if counts.get(m, RUNS) != RUNS:
                notes.append(f"{name}, {m}: {counts[m]} of {RUNS} runs succeeded")
            if m == "auto":
                notes.append(f"{name}, auto chose {r['chose']}")
        for m, e in errors.items():
            notes.append(f"{name}, {m} failed: {e}")
    runs = f"Medians of {RUNS} interleaved runs" if RUNS > 1 else "One run each"
    order = ", ".join(METHODS) + (", then again" if RUNS > 1 else "")
    print(f"\n{runs} ({order}). {MIB} MiB subjects; "
          f"the write-heavy one dirties {PAGES_PER_TICK} pages per 100 ms. relive's numbers are "
          "its own report (`relive migrate --json`: downtime = frozen at the source until running "
          "at the destination; bytes = everything on the wire, LZ4-compressed, TLS 1.3); plain "
          "CRIU's downtime and total are the wall time from `criu dump` through streaming the "
          "uncompressed images across the bridge to the end of `criu restore`, and its bytes are "
          "the images' size. Every memory subject checked all its pages after each migration; "
          "redis had to answer DBSIZE with its data from the load generator's namespace. "
          "link MB/s is the report's link_rate: what the source sent over the time its link was "
          "busy sending (transfer/rate_limit.h); capped rows ran with `--max-bandwidth`.")
    for n in notes:
        print(f"\n- {n}")
    crtr_goals(results)


def crtr_goals(results):
    """CR/TR-Motion against our own pre-copy on the write-heavy workload (the issue's goals)."""
    for name, (medians, _, _) in results.items():
        c, p = medians.get("crtr"), medians.get("precopy")
        if not name.startswith("write") or not c or not p:
            continue
        pct = lambda a, b: f"{a / b * 100:.1f} %" if b else "-"
        met = lambda a, b, goal: "met" if b and a / b <= goal else "NOT met"
        print(f"\nCR/TR-Motion vs pre-copy, {name}: downtime {pct(c['downtime'], p['downtime'])} "
              f"of pre-copy's (goal <= 25 %: {met(c['downtime'], p['downtime'], 0.25)}), total "
              f"time {pct(c['total'], p['total'])} (goal <= 70 %: "
              f"{met(c['total'], p['total'], 0.70)}), data after the first full copy "
              f"{pct(c['after_first'], p['after_first'])} (goal <= 5 %: "
              f"{met(c['after_first'], p['after_first'], 0.05)}; CR/TR: the log, one 8-byte hash "
              "per page and the pages the replay did not reproduce; pre-copy: its rounds after "
              "the first and the final copy).")


def measure_crtr_sizes():
    """CR/TR's downtime at several memory sizes: the switch-over should not grow with memory."""
    results = {}
    for mib in CRTR_MIB:
        rows, errors = [], []
        for run in range(RUNS):
            try:
                rows.append(one_run(MemoryWorkload("write", mib), "crtr"))
            except Exception as e:
                errors.append(str(e).replace("\n", " ").replace("|", "/")[:300])
            print(f"migrate bench: crtr {mib} MiB run {run + 1}: "
                  f"{rows[-1] if rows and not errors else errors[-1:]}", file=sys.stderr)
        results[mib] = (median_row(rows) if rows else None, errors)
    return results


def print_crtr_sizes(results):
    print("\n### CR/TR downtime by memory size\n")
    print(f"The write-heavy subject ({PAGES_PER_TICK} dirty pages per 100 ms) at each size, "
          "`relive migrate --strategy crtr`, uncapped; "
          + (f"medians of {RUNS} runs." if RUNS > 1 else "one run each.") + "\n")
    print("| memory | downtime ms | total ms | MB on the wire | MB after the checkpoint "
          "| downtime / smallest |")
    print("|---|---|---|---|---|---|")
    base = None
    for mib, (r, errors) in results.items():
        if r is None:
            print(f"| {mib} MiB | failed: {'; '.join(errors)} | | | | |")
            continue
        base = base or r["downtime"]
        print(f"| {mib} MiB | {r['downtime']:.0f} | {r['total']:.0f} | {r['bytes'] / 1e6:.1f} "
              f"| {r['after_first'] / 1e6:.1f} | {ratio(r['downtime'], base)} |")
    sizes = [m for m, (r, _) in results.items() if r]
    if len(sizes) > 1:
        lo, hi = results[sizes[0]][0]["downtime"], results[sizes[-1]][0]["downtime"]
        print(f"\n{sizes[-1]} MiB against {sizes[0]} MiB: {hi / lo:.2f}x (goal <= 1.5x: "
              f"{'met' if hi / lo <= 1.5 else 'NOT met'}).")


CONCURRENT_STRATEGIES = ["stop-copy", "stop-copy", "precopy", "crtr"]
CONCURRENT_MIB = int(os.environ.get("RELIVE_BENCH_CONCURRENT_MIB", "64"))


def concurrent_round(parallel):
    """The four migrations, one after another or all at once: wall time of the migrations
    only (the subjects are started and at steady state before the clock starts)."""
    works, loads, pids = [], [], []
    try:
        for _ in CONCURRENT_STRATEGIES:
            work = tempfile.mkdtemp(prefix="relive-bench-conc-", dir=IMAGE_ROOT)
            os.chmod(work, 0o755)
            works.append(work)
            load = MemoryWorkload("write", CONCURRENT_MIB, SWEEP_DIRTY)
            pids.append(load.start(work))
            loads.append(load)
        rows = [None] * len(loads)
        errors = []

        def one(i):
            try:
                rows[i] = relive_migrate(loads[i], CONCURRENT_STRATEGIES[i], pids[i])
            except Exception as e:
                errors.append(f"{CONCURRENT_STRATEGIES[i]}: {e}")

        t0 = time.perf_counter()
        if parallel:
            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(loads))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for i in range(len(loads)):
                one(i)
        wall = (time.perf_counter() - t0) * 1000
        if errors:
            raise RuntimeError("; ".join(errors))
        for i, load in enumerate(loads):
            load.gone()
            pids[i] = rows[i]["pid"]
            load.verify(pids[i])
        return wall, rows
    finally:
        for load, pid in zip(loads, pids):
            load.stop(pid)
        for w in works:
            shutil.rmtree(w, ignore_errors=True)


def print_concurrent(seq, par):
    (seq_wall, seq_rows), (par_wall, par_rows) = seq, par
    print("| run | wall ms | " + " | ".join(f"{s} total ms / downtime ms" for s in CONCURRENT_STRATEGIES) + " |")
    print("|---|---|" + "---|" * len(CONCURRENT_STRATEGIES))
    for name, wall, rows in (("one after another", seq_wall, seq_rows), ("all four at once", par_wall, par_rows)):
        cells = " | ".join(f"{r['total']:.0f} / {r['downtime']:.0f}" for r in rows)
        print(f"| {name} | {wall:.0f} | {cells} |")
    print(f"\nall at once / one after another: {ratio(par_wall, seq_wall)} "
          f"({os.cpu_count()} CPUs; {CONCURRENT_MIB} MiB subjects dirtying {SWEEP_DIRTY} pages "
          "per 100 ms; every subject checked all its pages after its migration)")


def main_concurrent():
    work = tempfile.mkdtemp(prefix="relive-bench-migd-")
    os.chmod(work, 0o755)
    net_up()
    relived = None
    try:
        relived = start_relived(work)
        seq = concurrent_round(parallel=False)
        print(f"migrate bench: one after another: {seq[0]:.0f} ms", file=sys.stderr)
        par = concurrent_round(parallel=True)
        print(f"migrate bench: all at once: {par[0]:.0f} ms", file=sys.stderr)
    finally:
        if relived:
            relived.terminate()
            relived.wait(60)
        net_down()
        shutil.rmtree(work, ignore_errors=True)
    print_concurrent(seq, par)
    return 0


def main():
    args = sys.argv[1:]
    while args:
        if args[0] == "--max-bandwidth" and len(args) > 1 and args[1].isdigit():
            CAPS.append(int(args[1]))
            args = args[2:]
        else:
            print(f"usage: {sys.argv[0]} [--max-bandwidth BYTES_PER_S]...", file=sys.stderr)
            return 64
    for path in (RELIVE, RELIVED, SUBJECT, CRIU):
        if not os.path.exists(path):
            print(f"missing {path}: build first", file=sys.stderr)
            return 1
    if sys.argv[1:] == ["--concurrent"]:
        return main_concurrent()
    work = tempfile.mkdtemp(prefix="relive-bench-migd-")
    os.chmod(work, 0o755)
    net_up()
    relived = None
    try:
        relived = start_relived(work)
        results = measure()
        sweep = measure_sweep() if SWEEP_MIB else {}
        sizes = measure_crtr_sizes() if CRTR_MIB else {}
    finally:
        if relived:
            relived.terminate()
            try:
                relived.wait(60)  # it stops accepting at once and no migration runs
            except subprocess.TimeoutExpired:
                relived.kill()
                relived.wait()
        net_down()
        shutil.rmtree(work, ignore_errors=True)
    print_tables(results)
    if sweep:
        print_sweep(sweep)
    if sizes:
        print_crtr_sizes(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
