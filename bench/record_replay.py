#!/usr/bin/python3
"""Record/replay benchmarks, side by side in one run.

For each subject: the native run, `relive record` and `relive replay` are timed in interleaved
rounds (so machine noise hits all alike) and compared as ratios of medians. Recording and replay
run both as shipped (tracer and program bound to one CPU) and with `--cpu none` (free to run on
any CPU, as before the binding), side by side; recording and replay also with `--no-syscall-buffer`
(every clock call and every call of glibc's syscall sites through a ptrace stop, as before the
fast path). And a real server, redis-server under redis-benchmark, natively and recorded. Also reports
trace bytes per second of native execution and replay speed relative to recording.
Prints a Markdown section on stdout.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("RELIVE_BUILD", os.path.join(ROOT, "build"))
RELIVE = os.path.join(BUILD, "bin", "relive")
ROUNDS = int(os.environ.get("RELIVE_BENCH_ROUNDS", "5"))
CLOCK_READS = 1000000
BYTE_CALL_LOOPS = 200000  # bench/byte_calls.c: a pread64 and a write each


def timed(argv, **kw):
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {r.returncode}: {r.stderr.decode()[-400:]}")
    return dt


def measure(name, argv, rounds):
    native, rec, rep, trace_bytes, events, preempts = [], [], [], 0, 0, 0
    rec_free, rep_free, rec_traced, rep_traced = [], [], [], []
    for _ in range(rounds):
        d = tempfile.mkdtemp(prefix="relive-bench-")
        try:
            native.append(timed(argv))
            rec.append(timed([RELIVE, "record", "-o", d + "/t", "--"] + argv))
            rep.append(timed([RELIVE, "replay", d + "/t"]))
            rec_free.append(timed([RELIVE, "record", "--cpu", "none", "-o", d + "/u", "--"] + argv))
            rep_free.append(timed([RELIVE, "replay", "--cpu", "none", d + "/u"]))
            rec_traced.append(timed([RELIVE, "record", "--no-syscall-buffer", "-o", d + "/v", "--"]
                                    + argv))
            rep_traced.append(timed([RELIVE, "replay", "--no-syscall-buffer", d + "/v"]))
            trace_bytes = os.path.getsize(d + "/t/events")
            out = subprocess.run([RELIVE, "dump", d + "/t"], capture_output=True, text=True).stdout
            events = sum(1 for line in out.splitlines() if line.startswith("#"))
            preempts = sum(1 for line in out.splitlines() if " preempted at ip " in line)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    n, r, p = statistics.median(native), statistics.median(rec), statistics.median(rep)
    return dict(name=name, native=n, record=r, replay=p, bytes=trace_bytes, events=events,
                preempts=preempts, record_free=statistics.median(rec_free),
                replay_free=statistics.median(rep_free),
                record_traced=statistics.median(rec_traced),
                replay_traced=statistics.median(rep_traced))


REDIS_REQUESTS = int(os.environ.get("RELIVE_BENCH_REDIS_REQUESTS", "20000"))
REDIS_PORT = 6390


def redis_cli(*args):
    return subprocess.run(["redis-cli", "-p", str(REDIS_PORT), *args], capture_output=True,
                          text=True, timeout=30)


def redis_throughput(prefix, trace):
    """redis-server started under `prefix` (nothing: natively), redis-benchmark with 50 clients
    of SET and GET against it; then shut down and, when recorded, the trace replayed. Returns
    {"SET": req/s, "GET": req/s} and whether the replay exited 0."""
    argv = prefix + ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no",
                     "--bind", "127.0.0.1", "--daemonize", "no"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while redis_cli("ping").stdout.strip() != "PONG":
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {server.stderr.read().decode()[-400:]}")
            time.sleep(0.05)
        bench = subprocess.run(["redis-benchmark", "-p", str(REDIS_PORT), "-c", "50", "-n",
                                str(REDIS_REQUESTS), "-t", "set,get", "-q"],
                               capture_output=True, text=True, timeout=600)
        rates = {}
        for line in bench.stdout.replace("\r", "\n").splitlines():
            for op in ("SET", "GET"):
                if line.startswith(op + ":") and "requests per second" in line:
                    rates[op] = float(line.split()[1])
        redis_cli("shutdown", "nosave")
        if server.wait(timeout=120) != 0:
            raise RuntimeError(f"redis-server exited {server.returncode}: "
                               f"{server.stderr.read().decode()[-400:]}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    replayed = None
    if trace:
        replayed = subprocess.run([RELIVE, "replay", trace], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=600).returncode == 0
    return rates, replayed


def measure_redis(rounds):
    """A real server recorded from exec: redis-server's throughput natively, recorded with the
    fast path and recorded with every call traced, in interleaved rounds."""
    if shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None:
        print("\nredis-server or redis-benchmark missing: the server row is skipped.")
        return
    runs = {"native": [], "record": [], "traced": []}
    replays = []
    for _ in range(rounds):
        d = tempfile.mkdtemp(prefix="relive-bench-redis-")
        try:
            runs["native"].append(redis_throughput([], None)[0])
            rates, ok = redis_throughput([RELIVE, "record", "-o", d + "/t", "--"], d + "/t")
            runs["record"].append(rates)
            replays.append(ok)
            rates, ok = redis_throughput([RELIVE, "record", "--no-syscall-buffer", "-o", d + "/v",
                                          "--"], d + "/v")
            runs["traced"].append(rates)
            replays.append(ok)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def med(kind, op):
        return statistics.median(r.get(op, 0.0) for r in runs[kind])

    print(f"\nA server recorded from exec: redis-server under `redis-benchmark -c 50 -n "
          f"{REDIS_REQUESTS} -t set,get` (medians of {rounds} interleaved rounds, requests per "
          "second):\n")
    print("| | native | recorded | recorded / native | every call traced | traced / native |")
    print("|---|---|---|---|---|---|")
    for op in ("SET", "GET"):
        n, r, t = med("native", op), med("record", op), med("traced", op)
        print(f"| {op} | {n:.0f} | {r:.0f} | **{r / n * 100:.0f} %** | {t:.0f} | {t / n * 100:.0f} % |")
    kept = min(med("record", op) / med("native", op) for op in ("SET", "GET"))
    print(f"\nGoal: a recorded redis-server keeps >= 50 % of its throughput: {kept * 100:.0f} % "
          f"({'met' if kept >= 0.5 else 'NOT met'}). Every recording replayed without divergence: "
          f"{'yes' if all(replays) else 'NO'} ({sum(1 for r in replays if r)}/{len(replays)}).")


ATTACH_LOOPS = 100000  # bench/byte_calls.c --on-input: a pread64 and a write each


def attached_loop_ns(extra):
    """Starts bench/byte_calls waiting for input; with `extra` (relive record flags) attaches
    `relive record --pid` to it first (waiting for its checkpoint); then lets it run its loop and
    returns the loop's own time in ns (the process's monotonic clock) and the trace's events."""
    d = tempfile.mkdtemp(prefix="relive-bench-attach-")
    prog = subprocess.Popen([BUILD + "/bench/byte_calls", str(ATTACH_LOOPS), "--on-input"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    rec = None
    try:
        if extra is not None:
            rec = subprocess.Popen([RELIVE, "record", "-o", d + "/t"] + extra +
                                   ["--pid", str(prog.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.time() + 120
            while not os.path.exists(d + "/t/header"):
                if time.time() > deadline or rec.poll() is not None:
                    raise RuntimeError("relive record --pid did not checkpoint: "
                                       + rec.stderr.read().decode()[-400:])
                time.sleep(0.01)
        prog.stdin.write(b"x")
        prog.stdin.flush()
        out = prog.stdout.readline().split()
        if prog.wait(timeout=600) != 0 or len(out) != 2:
            raise RuntimeError(f"byte_calls failed: {out}")
        events = 0
        if rec is not None:
            if rec.wait(timeout=120) != 0:
                raise RuntimeError("relive record --pid: " + rec.stderr.read().decode()[-400:])
            dump = subprocess.run([RELIVE, "dump", d + "/t"], capture_output=True, text=True).stdout
            events = sum(1 for line in dump.splitlines() if line.startswith("#"))
        return int(out[0]), events
    finally:
        if prog.poll() is None:
            prog.kill()
        if rec is not None and rec.poll() is None:
            rec.kill()
        shutil.rmtree(d, ignore_errors=True)


def measure_attached(rounds):
    """A running process recorded through `relive record --pid` (what CR/TR's source runs):
    syscall user dispatch and the fast path against every call stopped (--no-syscall-buffer)."""
    native, fast, traced, events = [], [], [], 0
    for _ in range(rounds):
        native.append(attached_loop_ns(None)[0])
        ns, events = attached_loop_ns([])
        fast.append(ns)
        traced.append(attached_loop_ns(["--no-syscall-buffer"])[0])
    calls = 2 * ATTACH_LOOPS
    n, f, t = (statistics.median(x) for x in (native, fast, traced))
    print(f"\nAttached (`relive record --pid`, CR/TR's source): bench/byte_calls.c, {ATTACH_LOOPS // 1000}k x "
          f"(8-byte pread64 + 8-byte write), timed by the program itself from when it is already "
          f"attached; medians of {rounds} rounds:\n")
    print("| | loop ms | per call µs | / native |")
    print("|---|---|---|---|")
    print(f"| native | {n / 1e6:.1f} | {n / calls / 1e3:.2f} | 1.00x |")
    print(f"| attached, fast path (syscall user dispatch) | {f / 1e6:.1f} | {f / calls / 1e3:.2f} | **{f / n:.2f}x** |")
    print(f"| attached, every call stopped (`--no-syscall-buffer`) | {t / 1e6:.1f} | {t / calls / 1e3:.2f} | {t / n:.2f}x |")
    print(f"\nCost per call of the attached fast path: {(f - n) / calls / 1e3:.2f} µs "
          f"(every call stopped: {(t - n) / calls / 1e3:.2f} µs); {events} events in the trace.")


def main():
    if sys.argv[1:] == ["attach"]:  # only this section
        measure_attached(ROUNDS)
        return 0
    subjects = [
        ("startup only (`true`)", ["true"], ROUNDS),
        ("CPU-bound (hash + qsort, bench/cpu_bound.c)", [BUILD + "/bench/cpu_bound", "200"], ROUNDS),
        ("syscall-heavy (4 KiB reads + clock + writes, bench/syscall_heavy.c)",
         [BUILD + "/bench/syscall_heavy", "/usr/bin/bash", "10"], ROUNDS),
        ("clock-heavy (1M clock_gettime, bench/clock_heavy.c)",
         [BUILD + "/bench/clock_heavy", str(CLOCK_READS)], ROUNDS),
        ("byte calls (200k x (8-byte pread64 + 8-byte write), bench/byte_calls.c)",
         [BUILD + "/bench/byte_calls", str(BYTE_CALL_LOOPS)], ROUNDS),
        ("python3 loop of 200k time.time_ns() + time.monotonic()",
         ["/usr/bin/python3", "-c",
          "import time\nfor _ in range(200000): time.time_ns(); time.monotonic()"], ROUNDS),
        ("python3 startup + `print(1)`", ["/usr/bin/python3", "-c", "print(1)"], ROUNDS),
        ("sort of 200k numbers", ["sort", "-n", "/tmp/relive-bench-sort.txt"], ROUNDS),
        ("sqlite3 :memory: 20k inserts",
         ["sqlite3", ":memory:", "create table t(x); with recursive c(i) as (select 1 union all "
          "select i+1 from c where i<20000) insert into t select random() from c; "
          "select count(*) from t;"], ROUNDS),
        ("ls -lR /usr/share/doc", ["ls", "-lR", "/usr/share/doc"], ROUNDS),
        ("date", ["date"], ROUNDS),
        ("od -x of 1 MiB of /dev/urandom", ["od", "-N", "1048576", "-x", "/dev/urandom"], ROUNDS),
        ("awk srand/rand 100k", ["awk", "BEGIN{srand(); for(i=0;i<100000;i++) s+=rand(); print s}"], ROUNDS),
        ("multi-threaded C (4 threads, mutex + condvar)",
         [BUILD + "/tests/subjects/threads_counter", "4"], ROUNDS),
        ("spin hand-off (2 threads, 30 rounds, no syscall while waiting)",
         [BUILD + "/tests/subjects/spin_handoff", "2", "30"], ROUNDS),
        ("spinlock counter + lock-free SPSC queue (3 threads)",
         [BUILD + "/tests/subjects/spin_lock", "3", "20000", "300"], ROUNDS),
    ]
    with open("/tmp/relive-bench-sort.txt", "w") as f:
        import random
        for _ in range(200000):
            f.write(f"{random.randint(0, 10**9)}\n")
    rows = [measure(*s) for s in subjects]
    goals = {"CPU-bound": 1.05, "syscall-heavy": 1.5, "startup only": 3.0}
    print("| program | native s | record s | record / native | replay s | replay / record | events | preemptions | trace bytes | trace KiB per native s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['native']:.3f} | {r['record']:.3f} | **{r['record']/r['native']:.2f}x** | "
              f"{r['replay']:.3f} | {r['replay']/r['record']:.2f}x | {r['events']} | {r['preempts']} | "
              f"{r['bytes']} | {r['bytes']/1024/r['native']:.1f} |")
    print("\nOne CPU against none (`--cpu none`), same rounds:\n")
    print("| program | record --cpu none / native | record / native | record: none / one CPU | replay --cpu none / native | replay / native | replay: none / one CPU |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['record_free']/r['native']:.2f}x | {r['record']/r['native']:.2f}x | "
              f"**{r['record_free']/r['record']:.2f}x** | {r['replay_free']/r['native']:.2f}x | "
              f"{r['replay']/r['native']:.2f}x | **{r['replay_free']/r['replay']:.2f}x** |")
    print("\nThe fast path against every call traced (`--no-syscall-buffer`), same rounds:\n")
    print("| program | record --no-syscall-buffer / native | record / native | fast path: record time / all traced "
          "| replay --no-syscall-buffer / native | replay / native | fast path: replay time / all traced |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['record_traced']/r['native']:.2f}x | {r['record']/r['native']:.2f}x | "
              f"**{r['record']/r['record_traced']:.2f}x** | {r['replay_traced']/r['native']:.2f}x | "
              f"{r['replay']/r['native']:.2f}x | **{r['replay']/r['replay_traced']:.2f}x** |")
    clock = next(r for r in rows if r["name"].startswith("clock-heavy"))
    start = next(r for r in rows if r["name"].startswith("startup only"))
    fixed = start["record"] - start["native"]  # a recording's own start and end
    fast_us = (clock["record"] - clock["native"] - fixed) / CLOCK_READS * 1e6
    traced_us = (clock["record_traced"] - clock["native"] - (start["record_traced"] - start["native"])) / CLOCK_READS * 1e6
    rep_fixed = start["replay"] - start["native"]
    rep_fast_us = (clock["replay"] - clock["native"] - rep_fixed) / CLOCK_READS * 1e6
    rep_traced_us = (clock["replay_traced"] - clock["native"] - (start["replay_traced"] - start["native"])) / CLOCK_READS * 1e6
    print(f"\nCost per clock call at record (clock-heavy row, less the `true` row's start-up cost, "
          f"over {CLOCK_READS} calls): fast path **{fast_us:.2f} us**, traced {traced_us:.1f} us "
          f"({traced_us / fast_us:.0f}x). Native: {clock['native'] / CLOCK_READS * 1e9:.0f} ns a call (vDSO, "
          "no kernel entry); the fast path enters the kernel for each call and appends it to the buffer. "
          f"At replay: from the buffer **{rep_fast_us:.2f} us**, traced {rep_traced_us:.1f} us "
          f"({rep_traced_us / rep_fast_us:.0f}x); the replayer writes the logged calls into the buffer "
          "(up to 13,106 a time) and the trampolines return them without entering the kernel.")
    byte = next(r for r in rows if r["name"].startswith("byte calls"))
    calls = 2 * BYTE_CALL_LOOPS

    def per_call(key):
        return (byte[key] - byte["native"] - (start[key] - start["native"])) / calls * 1e6

    print(f"\nCost per byte call (byte-calls row, less the `true` row's start-up cost, over {calls} "
          f"calls): at record, fast path **{per_call('record'):.2f} us**, traced "
          f"{per_call('record_traced'):.1f} us ({per_call('record_traced') / per_call('record'):.0f}x); "
          f"at replay, from the buffer **{per_call('replay'):.2f} us**, traced "
          f"{per_call('replay_traced'):.1f} us. Native: {byte['native'] / calls * 1e9:.0f} ns a call. "
          "The fast path makes the call without blocking (preadv2/pwritev2 with RWF_NOWAIT) from a "
          "stub the recorder patched over glibc's `syscall` and copies the bytes into the buffer; "
          "the tracer logs them at the next stop.")
    print("\nGoals from the issue (record / native): ", end="")
    for r in rows:
        for key, goal in goals.items():
            if r["name"].startswith(key):
                ratio = r["record"] / r["native"]
                print(f"{key} {ratio:.2f}x vs goal {goal}x ({'met' if ratio <= goal else 'NOT met'}); ", end="")
    print()
    heavy = next(r for r in rows if r["name"].startswith("syscall-heavy"))
    # Every call traced, so that the figure is the cost of a ptrace-stopped call.
    per_event_rec = (heavy["record_traced"] - heavy["native"]) / heavy["events"] * 1e6
    per_event_rep = (heavy["replay_traced"] - heavy["native"]) / heavy["events"] * 1e6
    print(f"\nCost per traced syscall on this machine (syscall-heavy row, --no-syscall-buffer): record "
          f"{per_event_rec:.1f} us (two ptrace stops), replay {per_event_rep:.1f} us (one stop). "
          "Compute between syscalls runs at native speed, so the slowdown of a program is roughly "
          "its traced-syscall rate times that cost. rr reaches 1.2-1.4x on syscall-heavy loads "
          "with an in-process syscall buffer that avoids stops; relive's takes the vDSO's clock calls and "
          "the common calls of patched glibc sites (README, How it works). "
          f"Free to use any CPU (--cpu none): record {(heavy['record_free'] - heavy['native']) / heavy['events'] * 1e6:.1f} us, "
          f"replay {(heavy['replay_free'] - heavy['native']) / heavy['events'] * 1e6:.1f} us.")
    stop = {}
    for mode in (("one",), ("two",), ("one", "tsc"), ("one", "tsc-both")):
        runs = sorted(float(subprocess.run([BUILD + "/bench/ptrace_stop", mode[0], "2000", *mode[1:]],
                                           capture_output=True, text=True, check=True).stdout)
                      for _ in range(3))
        stop[" ".join(mode)] = runs[1]
    print(f"\nThe same two stops without relive (bench/ptrace_stop.c: a tracer and a child whose "
          f"seccomp filter traces getppid, median of 3 x 5 x 2000 calls): {stop['one']:.1f} us per "
          f"call with both on one CPU, {stop['two']:.1f} us on two CPUs ({stop['two'] / stop['one']:.1f}x); "
          f"on one CPU with the child's rdtsc disabled as relive's tracees have it "
          f"{stop['one tsc']:.1f} us, and with the tracer's disabled too (relive's tracer thread "
          f"since tracee/tracer_tsc.h) {stop['one tsc-both']:.1f} us.")
    version = []
    for _ in range(ROUNDS * 4):
        version.append(timed([RELIVE, "--version"]))
    v = statistics.median(version)
    print(f"\nStart-up floor: `relive --version` (the binary's own start: loading and relocating its "
          f"shared libraries; median of {ROUNDS * 4}) takes {v * 1e3:.1f} ms; native `true` "
          f"{start['native'] * 1e3:.1f} ms, `relive record true` {start['record'] * 1e3:.1f} ms, "
          f"`relive replay` of it {start['replay'] * 1e3:.1f} ms. A recording also starts its log "
          "writer and the program (two forks), creates the trace directory and copies the program, "
          "its interpreter and libraries into it.")
    spins = [r for r in rows if r["preempts"] > 0]
    if spins:
        print("\nPreemption (spin-waits, no branch counters): " + "; ".join(
            f"{r['name'].split(' (')[0]}: {r['preempts']} preemptions, "
            f"{(r['record'] - r['native']) / r['preempts'] * 1e3:.1f} ms of recording per preemption"
            for r in spins) + ". A preemption waits out a 10 ms slice, then two passes of the loop "
            "under ptrace and two hashes of writable memory.")
    measure_redis(int(os.environ.get("RELIVE_BENCH_REDIS_ROUNDS", "3")))
    measure_attached(ROUNDS)
    print(f"\nMedians of {ROUNDS} interleaved rounds (native, record, replay, record --cpu none, replay --cpu none, record --no-syscall-buffer, replay --no-syscall-buffer, native, ...). "
          "Times include process start; `relive record` includes copying the program and its "
          "libraries into the trace.")


if __name__ == "__main__":
    sys.exit(main())
