#!/usr/bin/env bash
# The main job on the embedded default: record a real program, change its world (its input file
# deleted, its server gone, no network at all, a later clock), replay it, and show the replay is
# byte-for-byte the recording. Then move a running program to another host (two network
# namespaces) with CR/TR-Motion: checkpoint, log shipping, replay at the destination. Last, an
# HA pair protects redis-server; the primary's host is killed mid-write and the backup takes over
# with every acknowledged write.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh >/dev/null
relive=$PWD/build/bin/relive
work=$(mktemp -d /tmp/relive-demo-XXXXXX)
port=$((20000 + RANDOM % 20000))
cleanup() { pkill -f "http.server $port" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "Lisbon" > "$work/city.txt"
mkdir "$work/www" && echo "sunny, $(date +%H:%M:%S) at the server" > "$work/www/forecast.txt"
(cd "$work/www" && exec /usr/bin/python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
for _ in $(seq 100); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.05; done

echo "== 1. relive record: the program runs live, every nondeterministic input is logged"
"$relive" record -o "$work/trace" -- /usr/bin/python3 examples/weather_client.py "$work/city.txt" "$port" \
  | tee "$work/recorded.txt"

echo
echo "== 2. the world changes: input file deleted, server stopped, and replay runs with no network"
rm -f "$work/city.txt"; pkill -f "http.server $port"; sleep 1

echo
echo "== 3. relive replay (inside a fresh network namespace: no network at all)"
unshare --net "$relive" replay "$work/trace" | tee "$work/replayed.txt"

echo
if cmp -s "$work/recorded.txt" "$work/replayed.txt"; then
  echo "== identical: the replay reproduced the recording byte for byte"
else
  echo "== MISMATCH between recording and replay"; diff "$work/recorded.txt" "$work/replayed.txt"; exit 1
fi
events=$("$relive" dump "$work/trace" | grep -c '^#')
echo "   trace: $events events, $(du -sh "$work/trace/events" | cut -f1) of log; the conversation with the server, as logged:"
"$relive" dump "$work/trace" | grep -E ' (connect|sendto|recvfrom)\(' | head -n 4

echo
echo "== 4. relive migrate --strategy crtr: a running counter moves between two hosts (network"
echo "      namespaces on a bridge), by checkpoint + its log replayed at the destination, over TLS"
ns=rlvdemo$$
net_down() { for h in a b c br w-alpha w-beta; do ip netns del "$ns$h" 2>/dev/null || true; done; }
cleanup() { pkill -f "http.server $port" 2>/dev/null || true; pkill -f "$work/counter.py" 2>/dev/null || true
            [ -n "${relived_pid:-}" ] && kill "$relived_pid" 2>/dev/null || true
            pkill -f "relived --ha-config $work" 2>/dev/null || true; pkill -9 -f "redis-server \*:$port" 2>/dev/null || true
            pkill -f "etcd --name demo$$" 2>/dev/null || true; rm -rf "/dev/shm/relive-demo-etcd-$$"
            net_down; rm -rf "$work"; }
ip netns add "${ns}br"; ip -n "${ns}br" link add br0 type bridge; ip -n "${ns}br" link set br0 up
i=1
for h in a b c; do
  ip netns add "$ns$h"
  ip link add "v$h" netns "$ns$h" type veth peer name "p$h" netns "${ns}br"
  ip -n "${ns}br" link set "p$h" master br0 up
  ip -n "$ns$h" addr add "198.18.0.$i/24" dev "v$h"; ip -n "$ns$h" link set "v$h" up; ip -n "$ns$h" link set lo up
  i=$((i + 1))
done
in_a() { nsenter --net="/var/run/netns/${ns}a" "$@"; }
in_b() { nsenter --net="/var/run/netns/${ns}b" "$@"; }
"$relive" keys init "$work/keys" --hosts hosta,hostb >/dev/null
in_b "$PWD/build/bin/relived" --listen 198.18.0.2:7070 --tls-dir "$work/keys" --name hostb \
  --state-dir "$work/relived" --once 1 >"$work/relived.out" 2>"$work/relived.err" &
relived_pid=$!
cat >"$work/counter.py" <<'PY'
import sys, time, random
n = 0
while True:
    n += 1
    with open(sys.argv[1], "a") as f: f.write(f"{n} {random.random():.6f}\n")
    time.sleep(0.05)
PY
( setsid nsenter --net="/var/run/netns/${ns}a" /usr/bin/python3 "$work/counter.py" "$work/counter.log" </dev/null >/dev/null 2>&1 & )
for _ in $(seq 100); do [ -s "$work/counter.log" ] && grep -q listening "$work/relived.err" && break; sleep 0.05; done
sleep 1
pid=$(pgrep -f "$work/counter.py")
echo "   counter running on host a as pid $pid; last line: $(tail -n1 "$work/counter.log")"
in_a "$relive" migrate --pid "$pid" --to 198.18.0.2:7070 --strategy crtr --log-threshold 4096 \
  --tls-dir "$work/keys" --name hosta --peer-name hostb 2>/dev/null | sed 's/^/   /'
sleep 1
echo "   now on host b as pid $(pgrep -f "$work/counter.py"); last line: $(tail -n1 "$work/counter.log")"
if awk '$1 != NR { exit 1 }' "$work/counter.log"; then
  echo "== the counter carried on: no value lost or repeated"
else
  echo "== the counter skipped or repeated a value"; exit 1
fi

echo
echo "== 5. relived HA pair: redis-server protected on host a (primary), host b (backup), the fencing"
echo "      lease in etcd on host c; the client writes, then everything on host a is killed (-9)"
in_c() { nsenter --net="/var/run/netns/${ns}c" "$@"; }
ha_state=/dev/shm/relive-demo-etcd-$$
( setsid nsenter --net="/var/run/netns/${ns}c" etcd --name "demo$$" --data-dir "$ha_state" \
    --listen-client-urls http://198.18.0.3:2379 --advertise-client-urls http://198.18.0.3:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "demo$$=http://127.0.0.1:2380" --heartbeat-interval 10 --election-timeout 100 \
    </dev/null >"$work/etcd.log" 2>&1 & )
for _ in $(seq 200); do in_c curl -sf http://198.18.0.3:2379/health >/dev/null 2>&1 && break; sleep 0.05; done
"$relive" keys init "$work/hakeys" --hosts alpha,beta >/dev/null
mkdir -p "$work/redis"
cat >"$work/pair.toml" <<TOML
tls_dir = "$work/hakeys"
epoch_ms = 50
heartbeat_ms = 50
failure_timeout_ms = 300
[[peers]]
name = "alpha"
address = "198.18.0.1:7411"
[[peers]]
name = "beta"
address = "198.18.0.2:7411"
[etcd]
endpoints = ["http://198.18.0.3:2379"]
lease_key = "/relive/demo/$ns"
lease_ttl_s = 1
[workload]
command = ["/usr/bin/redis-server", "--port", "$port", "--save", "", "--appendonly", "yes", "--protected-mode", "no"]
directory = "$work/redis"
service_address = "198.18.0.10/24"
netns = "${ns}w"
TOML
ha_status() { in_c "$relive" ha status --config "$work/pair.toml" --name alpha "$@"; }
( setsid nsenter --net="/var/run/netns/${ns}a" "$PWD/build/bin/relived" --ha-config "$work/pair.toml" \
    --name alpha --state-dir "$work/ha-alpha" </dev/null >/dev/null 2>"$work/alpha.err" & )
for _ in $(seq 400); do grep -q "role primary" "$work/alpha.err" && break; sleep 0.05; done
( setsid nsenter --net="/var/run/netns/${ns}b" "$PWD/build/bin/relived" --ha-config "$work/pair.toml" \
    --name beta --state-dir "$work/ha-beta" </dev/null >/dev/null 2>"$work/beta.err" & )
for _ in $(seq 400); do ha_status --json 2>/dev/null | grep -q '"protection": "protected"' && break; sleep 0.1; done
ha_status | sed 's/^/   /'
acked=$(for i in $(seq 1 200); do printf 'SET key%d %d\r\n' "$i" "$i"; done \
  | in_c redis-cli -h 198.18.0.10 -p "$port" --pipe | sed -n 's/.*errors: 0, replies: \([0-9]*\).*/\1/p')
acked=${acked:-0}
echo "   the client wrote 200 keys; redis acknowledged $acked (the replies left only once the backup had their epoch)"
workload=$(ha_status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0].get("workload_pid", 0))')
t0=$(date +%s%N)
pkill -9 -f "relived --ha-config $work/pair.toml --name alpha"; kill -9 "$workload" 2>/dev/null || true
until in_c redis-cli -h 198.18.0.10 -p "$port" PING 2>/dev/null | grep -q PONG; do sleep 0.05; done
echo "   host a killed; the service answered again after $(( ($(date +%s%N) - t0) / 1000000 )) ms, now from host b:"
ha_status | sed 's/^/   /'
present=$(in_c redis-cli -h 198.18.0.10 -p "$port" MGET $(seq -f 'key%g' 1 200) | grep -c -E '^[0-9]+$' || true)
if [ "$present" -ge "$acked" ]; then
  echo "== after the failover $present of the $acked acknowledged keys are there: nothing acknowledged was lost"
else
  echo "== LOST acknowledged writes: only $present of $acked"; exit 1
fi
