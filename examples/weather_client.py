# The demo's program: an ordinary Python script full of nondeterminism. It reads a local file,
# asks a local HTTP server for data, mixes in the clock, randomness and its pid, and uses two
# threads. relive records it, then replays it after the file, the server and the network are gone.
import hashlib, os, random, sys, threading, time, urllib.request

city = open(sys.argv[1]).read().strip()
reply = urllib.request.urlopen("http://127.0.0.1:%s/forecast.txt" % sys.argv[2], timeout=5).read()
results = []
def sample(n):
    for _ in range(n):
        results.append(round(random.gauss(20, 5), 2))
        time.sleep(0.001)
workers = [threading.Thread(target=sample, args=(5,)) for _ in range(2)]
[w.start() for w in workers]; [w.join() for w in workers]
print("city      :", city)
print("server said:", reply.decode().strip())
print("samples   :", results)
print("time      :", time.strftime("%Y-%m-%d %H:%M:%S"), "monotonic", time.monotonic())
print("pid       :", os.getpid(), "token", os.urandom(6).hex())
print("digest    :", hashlib.sha256(repr(results).encode() + reply).hexdigest()[:16])
