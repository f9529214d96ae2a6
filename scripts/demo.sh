#!/usr/bin/env bash
# The main job on the embedded default: record a real program, change its world (its input file
# deleted, its server gone, no network at all, a later clock), replay it, and show the replay is
# byte-for-byte the recording.
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
