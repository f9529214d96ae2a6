#!/usr/bin/env bash
# The main job on the embedded default: record a real program, change its world (its input file
# deleted, its server gone, no network at all, a later clock), replay it, and show the replay is
# byte-for-byte the recording. Then move a running program to another host (two network
# namespaces) with CR/TR-Motion: checkpoint, log shipping, replay at the destination.
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
net_down() { for h in a b br; do ip netns del "$ns$h" 2>/dev/null || true; done; }
cleanup() { pkill -f "http.server $port" 2>/dev/null || true; pkill -f "$work/counter.py" 2>/dev/null || true
            [ -n "${relived_pid:-}" ] && kill "$relived_pid" 2>/dev/null || true; net_down; rm -rf "$work"; }
ip netns add "${ns}br"; ip -n "${ns}br" link add br0 type bridge; ip -n "${ns}br" link set br0 up
i=1
for h in a b; do
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
