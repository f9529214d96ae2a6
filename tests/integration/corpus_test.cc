// The record/replay corpus: real, unmodified Debian programs recorded, then replayed after the
// environment changed under them (inputs deleted or rewritten, servers gone, no network, a
// later clock, another working directory). The replay must reproduce stdout and stderr byte for
// byte and exit with the recorded status.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"

namespace relive::testing {
namespace {

struct Case {
  std::string name;
  std::string setup;  // shell, before recording; {d} is a scratch dir, {p} a free port
  std::vector<std::string> argv;
  std::string change;  // shell, after recording and before replay
  std::string stdin_path = "/dev/null";
};

// A one-connection TCP server that sends a greeting with its clock and randomness, then echoes.
const char* kPyServer =
    "/usr/bin/python3 -c 'import socket,os,time,sys\n"
    "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind((\"127.0.0.1\",{p}));s.listen(1)\n"
    "while True:\n"
    " c,_=s.accept();c.sendall(b\"hello %f %s\\n\"%(time.time(),os.urandom(4).hex().encode()))\n"
    " d=c.recv(100);c.sendall(d.upper());c.close()' >/dev/null 2>&1 &\n"
    "for i in $(seq 100); do ss -Hltn \"sport = :{p}\" | grep -q . && break; sleep 0.05; done";

const char* kHttpServer =
    "cd {d} && echo 'served at record time' > page.txt && "
    "(/usr/bin/python3 -m http.server {p} --bind 127.0.0.1 >/dev/null 2>&1 &) && "
    "for i in $(seq 100); do ss -Hltn \"sport = :{p}\" | grep -q . && break; sleep 0.05; done";

const char* kKillServers = "pkill -f 'python3.*{p}' ; sleep 0.2; true";

const char* kPyClient =
    "import socket,sys\n"
    "c=socket.create_connection((\"127.0.0.1\",int(sys.argv[1])))\n"
    "print(c.recv(100).decode().strip()); c.sendall(b\"ping\"); print(c.recv(100))\n";

const char* kPyTimeRandom =
    "import time,random,os,datetime,uuid\n"
    "print(time.time(), time.monotonic_ns(), random.random(), os.urandom(8).hex())\n"
    "print(datetime.datetime.now().isoformat(), uuid.uuid4(), os.getpid())\n";

const char* kPyThreads =
    "import threading,random,time,queue\n"
    "q=queue.Queue(); lock=threading.Lock(); log=[]\n"
    "def w(i):\n"
    "  for k in range(300):\n"
    "    with lock: log.append((i,k,random.random()))\n"
    "    if k%60==0: time.sleep(0.0005)\n"
    "  q.put(i)\n"
    "ts=[threading.Thread(target=w,args=(i,)) for i in range(4)]\n"
    "[t.start() for t in ts]; [t.join() for t in ts]\n"
    "print(len(log), hash(tuple(log)) & 0xffffffff, [q.get() for _ in ts])\n";

const char* kPyFiles =
    "import os,hashlib,sys,json\n"
    "d=sys.argv[1]; names=sorted(os.listdir(d))\n"
    "print(json.dumps({n: hashlib.sha256(open(os.path.join(d,n),'rb').read()).hexdigest()[:12] for "
    "n in names}))\n"
    "print(os.stat(d).st_mtime_ns, os.getcwd())\n";

const char* kPyFork =
    "import os,random,time\n"
    "r,w=os.pipe()\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    "  os.write(w, ('%f %d' % (random.random(), os.getpid())).encode()); os._exit(7)\n"
    "os.close(w); got=os.read(r,100).decode(); _,st=os.waitpid(pid,0)\n"
    "print('child said', got, 'exit', os.waitstatus_to_exitcode(st), time.time())\n";

const char* kPySignals =
    "import signal,time,os\n"
    "hits=[]\n"
    "signal.signal(signal.SIGALRM, lambda s,f: hits.append(('alarm', round(time.monotonic(),3))))\n"
    "signal.signal(signal.SIGUSR1, lambda s,f: hits.append(('usr1', os.getpid())))\n"
    "signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)\n"
    "for i in range(10):\n"
    "  time.sleep(0.004); sum(range(20000))\n"
    "  if i % 3 == 0: os.kill(os.getpid(), signal.SIGUSR1)\n"
    "signal.setitimer(signal.ITIMER_REAL, 0)\n"
    "print(len(hits), hits)\n";

template <typename F>
double seconds(F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string expand(std::string s, const std::string& dir, int port) {
  for (size_t at; (at = s.find("{d}")) != std::string::npos;) s.replace(at, 3, dir);
  for (size_t at; (at = s.find("{p}")) != std::string::npos;)
    s.replace(at, 3, std::to_string(port));
  return s;
}

std::vector<Case> corpus() {
  std::string subjects = test_bin_dir() + "/subjects/";
  const char* gen = "seq 1 5000 | shuf > {d}/input.txt && echo 'alpha beta gamma' > {d}/words";
  const char* wreck = "rm -rf {d}/* && echo changed > {d}/input.txt";
  return {
      {"date", "", {"date", "+%s.%N %Z"}, ""},
      {"date_default", "", {"date"}, ""},
      {"ls_long", gen, {"ls", "-l", "--full-time", "{d}"}, wreck},
      {"sort_generated", gen, {"sort", "-n", "{d}/input.txt"}, wreck},
      {"od_urandom", "", {"od", "-N", "64", "-x", "/dev/urandom"}, ""},
      {"head_urandom_binary", "", {"head", "-c", "4096", "/dev/urandom"}, ""},
      {"sha256sum", gen, {"sha256sum", "{d}/input.txt", "{d}/words"}, wreck},
      {"md5sum_missing_file", gen, {"md5sum", "{d}/words", "{d}/absent"}, wreck},
      {"wc", gen, {"wc", "{d}/input.txt"}, wreck},
      {"cat", gen, {"cat", "{d}/words"}, wreck},
      {"stat", gen, {"stat", "{d}/input.txt"}, wreck},
      {"find", gen, {"find", "{d}", "-type", "f"}, wreck},
      {"du", gen, {"du", "-ab", "{d}"}, wreck},
      {"uname", "", {"uname", "-a"}, ""},
      {"id", "", {"id"}, ""},
      {"env", "", {"env"}, ""},
      {"shuf_random", gen, {"shuf", "-n", "5", "{d}/input.txt"}, wreck},
      {"mktemp_dry_run", "", {"mktemp", "-u"}, ""},
      {"gzip", gen, {"gzip", "-c", "{d}/input.txt"}, wreck},
      {"tar", gen, {"tar", "-cf", "-", "-C", "{d}", "."}, wreck},
      {"awk_srand", "", {"awk", "BEGIN{srand(); print rand(), srand(), systime()}"}, ""},
      {"sqlite3_memory",
       "",
       {"sqlite3", ":memory:", "select random(), datetime('now'), hex(randomblob(8));"},
       ""},
      {"sqlite3_file",
       "sqlite3 {d}/db 'create table t(x); insert into t values (1),(2),(3);'",
       {"sqlite3", "{d}/db",
        "select sum(x), count(*) from t; insert into t values (random()); select count(*) from t;"},
       wreck},
      {"python_time_random", "", {"/usr/bin/python3", "-c", kPyTimeRandom}, ""},
      {"python_threads", "", {"/usr/bin/python3", "-c", kPyThreads}, ""},
      {"python_files", gen, {"/usr/bin/python3", "-c", kPyFiles, "{d}"}, wreck},
      {"python_socket_client",
       kPyServer,
       {"/usr/bin/python3", "-c", kPyClient, "{p}"},
       kKillServers},
      {"curl_local_server",
       kHttpServer,
       {"curl", "-s", "-i", "http://127.0.0.1:{p}/page.txt"},
       kKillServers},
      {"nc_client", kPyServer, {"nc", "-d", "-w", "2", "127.0.0.1", "{p}"}, kKillServers},
      {"c_threads_mutex_condvar", "", {subjects + "threads_counter", "4"}, ""},
      {"ls_failing_exit_status", "", {"ls", "/nonexistent-relive-path"}, ""},
      {"c_signals_timers_raise_eintr", "", {subjects + "signals"}, ""},
      {"python_signals", "", {"/usr/bin/python3", "-c", kPySignals}, ""},
      {"cat_stdin", gen, {"cat"}, wreck, "{d}/words"},
      {"sh_pipeline_children",
       gen,
       {"/bin/sh", "-c", "sort -R {d}/input.txt | head -n 3; ls {d} | wc -l; date +%N"},
       wreck},
      {"bash_random_subshell",
       "",
       {"/bin/bash", "-c", "for i in 1 2 3; do echo $i $RANDOM; done; echo $(date +%s%N) $$"},
       ""},
      {"python_subprocess",
       "",
       {"/usr/bin/python3", "-c",
        "import subprocess; print(subprocess.check_output(['date', '+%s%N']), "
        "subprocess.run(['false']).returncode)"},
       ""},
      {"python_os_fork_wait", "", {"/usr/bin/python3", "-c", kPyFork}, ""},
      // Daemon threads blocked in futex when the main thread calls exit_group: the replay
      // must let exit_group kill them, not kill them first (the status would be SIGKILL's).
      {"python_daemon_threads_at_exit",
       "",
       {"/usr/bin/python3", "-c",
        "import threading, time\n"
        "for i in range(3): threading.Thread(target=threading.Event().wait, "
        "daemon=True).start()\n"
        "time.sleep(0.05); print('main exits', time.time())"},
       ""},
      // node: libuv's thread pool and V8's threads, timers, randomness, an HTTP server and its
      // client in one event loop.
      {"node_http_timers",
       "",
       {"/usr/bin/node", "-e",
        "const h=require('http'); const s=h.createServer((q,r)=>r.end('ok '+Date.now()))"
        ".listen(0,'127.0.0.1',()=>h.get('http://127.0.0.1:'+s.address().port,(r)=>{let d='';"
        "r.on('data',x=>d+=x);r.on('end',()=>{console.log(d, Math.random());s.close();"
        "setTimeout(()=>console.log('t',Date.now()),10)})}))"},
       ""},
      // coreutils' timeout: its own process group, rt_sigsuspend for SIGALRM/SIGCHLD, then
      // SIGTERM and SIGCONT to the child and to its own group.
      {"timeout_kills_its_child",
       "",
       {"/bin/bash", "-c", "timeout 0.2 sleep 5; echo $?; timeout -s INT 0.1 sleep 3; echo $?"},
       ""},
      {"env_python_script",
       "printf '#!/usr/bin/env python3\\nimport random,sys\\nprint(sys.argv[1:], "
       "random.random())\\n' "
       "> {d}/s.py && chmod +x {d}/s.py",
       {"{d}/s.py", "one", "two"},
       "rm -f {d}/s.py"},
  };
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class Corpus : public ::testing::TestWithParam<Case> {};

TEST_P(Corpus, ReplayIsByteIdenticalInAChangedEnvironment) {
  const Case& c = GetParam();
  TempDir scratch, trace_parent;
  int port = 20000 + static_cast<int>((std::hash<std::string>{}(c.name) + ::getpid()) % 20000);
  std::string trace = trace_parent / "trace";
  if (!c.setup.empty()) ASSERT_EQ(sh(expand(c.setup, scratch.path(), port)), 0) << "setup failed";

  std::vector<std::string> rec = {relive_bin(), "record", "-o", trace, "--"};
  for (const auto& a : c.argv) rec.push_back(expand(a, scratch.path(), port));
  std::string stdin_path = expand(c.stdin_path, scratch.path(), port);
  // bench/run.sh sets RELIVE_CORPUS_METRICS to collect timings; tests never assert on them.
  const char* metrics = std::getenv("RELIVE_CORPUS_METRICS");
  double native_s = 0;
  if (metrics != nullptr)
    native_s = seconds(
        [&] { run(std::vector<std::string>(rec.begin() + 5, rec.end()), 120, stdin_path); });
  RunResult recorded;
  double record_s = seconds([&] { recorded = run(rec, 120, stdin_path); });
  ASSERT_LT(recorded.exit_code, 125) << recorded.err;

  if (!c.change.empty()) sh(expand(c.change, scratch.path(), port));
  // Another host, as far as the program could tell: a fresh network namespace (only a downed
  // loopback, no network at all) and another host name.
  RunResult replayed;
  double replay_s = seconds([&] {
    replayed =
        run({"unshare", "--net", "--uts", "/bin/sh", "-c",
             "hostname replay-host-elsewhere && exec \"$0\" replay \"$1\"", relive_bin(), trace});
  });
  if (metrics != nullptr) {
    std::ofstream(metrics, std::ios::app)
        << c.name << " " << native_s << " " << record_s << " " << replay_s << " "
        << std::filesystem::file_size(trace + "/events") << "\n";
  }
  EXPECT_EQ(replayed.exit_code, recorded.exit_code) << replayed.err;
  EXPECT_EQ(replayed.out, recorded.out) << "stderr of replay: " << replayed.err;
  EXPECT_EQ(replayed.err, recorded.err);
  EXPECT_FALSE(recorded.out.empty() && recorded.err.empty())
      << "the program printed nothing; exit " << recorded.exit_code;
}

INSTANTIATE_TEST_SUITE_P(DebianPrograms, Corpus, ::testing::ValuesIn(corpus()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace relive::testing
