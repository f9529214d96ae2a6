// Live migration end to end: relived in one network-namespace host, the workload and
// `relive migrate` in another, a client in a third; real CRIU, real TLS, real programs.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "counter_subject.h"
#include "netns_hosts.h"
#include "relived_fixture.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Echo server on the service address: answers every line, and counts the lines it has seen in
// memory, so that a lost or repeated byte after migration shows in the replies.
const char* kEchoServer = R"(
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9000)); s.listen(1)
c, _ = s.accept(); n = 0; buf = b""
while True:
    d = c.recv(4096)
    if not d: break
    buf += d
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1); n += 1
        c.sendall(b"%d %s\n" % (n, line))
)";

// The same service from a multi-threaded server: a thread per client (the main thread blocked in
// accept), and a ticker thread that wakes every 20 ms.
const char* kThreadedEchoServer = R"(
import socket, sys, threading, time
ticks = 0
def ticker():
    global ticks
    while True:
        time.sleep(0.02); ticks += 1
def serve(c):
    n = 0; buf = b""
    while True:
        d = c.recv(4096)
        if not d: break
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1); n += 1
            c.sendall(b"%d %s\n" % (n, line))
threading.Thread(target=ticker, daemon=True).start()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9000)); s.listen(4)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
)";

// Sends numbered lines for `duration` seconds and checks each reply: the server's count must
// equal ours (nothing lost or duplicated) and echo our line. Exit 0 and prints the count.
const char* kEchoClient = R"(
import socket, sys, time
c = socket.create_connection((sys.argv[1], 9000), timeout=30)
f = c.makefile("rb"); end = time.time() + float(sys.argv[2]); i = 0
while time.time() < end:
    i += 1; c.sendall(b"line%d\n" % i)
    want = b"%d line%d\n" % (i, i); got = f.readline()
    if got != want: print("mismatch", want, got); sys.exit(1)
    time.sleep(0.01)
print(i)
)";

// Every value from 0 to the last, each once: the counter carried on where it was.
class Migrate : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, CRIU)";
    ASSERT_NO_FATAL_FAILURE(make_two_hosts(hosts_, dir_));
    write_all_to(dir_ / "counter.py", kCounter);
    write_all_to(dir_ / "server.py", kEchoServer);
    write_all_to(dir_ / "threaded_server.py", kThreadedEchoServer);
    write_all_to(dir_ / "client.py", kEchoClient);
  }
  // Whatever a test left behind (a migrated-in counter is relived's child, and relived waits
  // for it): everything started with this test's directory on its command line.
  void TearDown() override {
    // relived removes a migration's work dir as the migration ends, a moment after the source
    // has its answer: let it finish (it exits by itself after --once) before it is killed.
    if (relived_) eventually([&] { return !relived_->running() || work_dirs_gone(); }, seconds(60));
    kill_test_processes(&relived_, dir_);
    if (!IsSkipped()) expect_no_work_dirs_left();
  }

  // relived keeps only CRIU's logs of a migration, under its state dir, in a directory named
  // like the migration's work dir: each such work dir must be gone, whether the migration
  // succeeded or failed.
  bool work_dirs_gone() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "stateb/logs", ec))
      if (std::filesystem::exists(work_root_ + "/" + e.path().filename().string())) return false;
    return true;
  }

  void expect_no_work_dirs_left() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "stateb/logs", ec)) {
      std::string work = work_root_ + "/" + e.path().filename().string();
      EXPECT_TRUE(eventually([&] { return !std::filesystem::exists(work); }, seconds(30)))
          << work << " was left behind";
    }
  }

  void start_relived(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args;
    // Work in the default place (/dev/shm) only where a test says so.
    if (work_root_ != "/dev/shm") args.insert(args.end(), {"--work-dir", work_root_});
    if (extra.empty()) {
      args.insert(args.end(), {"--tls-dir", dir_ / "keys", "--name", "hostb"});
    } else {
      args.insert(args.end(), extra.begin(), extra.end());
    }
    relive::testing::start_relived(hosts_, dir_, args, &relived_);
  }

  RunResult migrate(pid_t pid, const std::string& strategy, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {relive_bin(),        "migrate", "--pid",
                                     std::to_string(pid), "--to",    relived_address(hosts_),
                                     "--strategy",        strategy,  "--json"};
    if (std::find(extra.begin(), extra.end(), "--insecure") == extra.end())
      argv.insert(argv.end(),
                  {"--tls-dir", dir_ / "keys", "--name", "hosta", "--peer-name", "hostb"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(hosts_.in('a', argv), 180);
  }

  // Runs the counter in host a, migrates it, and checks it carries on at the destination.
  void migrate_counter(const std::string& strategy) {
    start_relived();
    std::string log = dir_ / "counter.log";
    Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", log}), "/dev/null");
    ASSERT_TRUE(eventually([&] { return last_count(log) >= 10; }, seconds(10)));
    RunResult r = migrate(counter.pid(), strategy);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto report = nlohmann::json::parse(r.out);
    EXPECT_EQ(report["strategy"], strategy);
    EXPECT_GT(report["bytes_total"].get<uint64_t>(), 0u);
    EXPECT_GE(report["downtime_ms"].get<double>(), 0.0);
    // SIGKILLed at the commit while frozen: it never runs again, but the kernel may take a
    // moment to finish it.
    EXPECT_TRUE(eventually([&] { return !counter.running(); }, seconds(5)))
        << "the source must end after the switch-over";
    int at_switch = last_count(log);
    EXPECT_TRUE(eventually([&] { return last_count(log) >= at_switch + 20; }, seconds(10)))
        << "the counter did not carry on at the destination";
    EXPECT_TRUE(contiguous(log)) << "a value was lost or repeated";
    std::string out = read_all(dir_ / "relived.out");
    EXPECT_NE(out.find("\"event\":\"migrated\""), std::string::npos) << out;
    // The destination keeps CRIU's logs; the workload-sized images (in memory) are gone
    // (TearDown checks).
    EXPECT_TRUE(eventually(
        [&] {
          return sh("ls " + dir_ / "stateb/logs/relive-incoming-*/*restore.log" +
                    " >/dev/null 2>&1") == 0;
        },
        seconds(30)))
        << "the destination kept no CRIU log";
    pid_t dest = report["destination_pid"].get<pid_t>();
    ASSERT_GT(dest, 0);
    ::kill(dest, SIGKILL);
  }

  // After a failed migration: the source still runs, counts on, and lost or repeated nothing.
  void expect_runs_on(const Background& source, const std::string& log) {
    ASSERT_TRUE(source.running());
    int before = last_count(log);
    EXPECT_TRUE(eventually([&] { return last_count(log) >= before + 10; }, seconds(10)));
    EXPECT_TRUE(contiguous(log));
  }

  NetnsHosts hosts_{"rlt" + std::to_string(::getpid() % 100000), 0};
  TempDir dir_;
  std::string work_root_ = dir_ / "stateb";
  std::unique_ptr<Background> relived_;
};

TEST_F(Migrate, StopCopyCounterCarriesOn) { migrate_counter("stop-copy"); }

// relived's default work dir is /dev/shm: what a migration put there (images as large as the
// workload) is gone once it ends (TearDown checks), and only CRIU's logs stay, in the state dir.
TEST_F(Migrate, NothingIsLeftInDevShm) {
  work_root_ = "/dev/shm";
  migrate_counter("precopy");
}
TEST_F(Migrate, PrecopyCounterCarriesOn) { migrate_counter("precopy"); }
TEST_F(Migrate, PostcopyCounterCarriesOn) { migrate_counter("postcopy"); }
TEST_F(Migrate, CrtrCounterCarriesOn) { migrate_counter("crtr"); }

// The freeze hashes what the process wrote lately, not its memory: a 64 MiB buffer written a
// page at a time while the log ships is kept hashed (transfer/hash_keeper.h), so the switch-over
// is left with a few pages, and the counter carries on at the destination.
TEST_F(Migrate, CrtrFreezeHashesWhatWasWrittenLatelyNotTheMemory) {
  start_relived();
  write_all_to(dir_ / "big_counter.py", R"PY(
import sys, time
buf = bytearray(b"\x5a" * (64 << 20))
f = open(sys.argv[1], "a")
i = 0
while True:
    buf[(i * 7 * 4096) % len(buf)] = i & 255
    f.write(f"{i}\n"); f.flush(); i += 1; time.sleep(0.02)
)PY");
  std::string log = dir_ / "big.log";
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "big_counter.py", log}),
                     "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 10; }, seconds(30)));
  RunResult r = migrate(counter.pid(), "crtr");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t at = r.err.find("phase=hashed lazy_pages=");
  ASSERT_NE(at, std::string::npos) << r.err;
  unsigned long long lazy = 0, at_freeze = 0;
  ASSERT_EQ(std::sscanf(r.err.c_str() + at, "phase=hashed lazy_pages=%llu hashed_at_freeze=%llu",
                        &lazy, &at_freeze),
            2)
      << r.err;
  EXPECT_GE(lazy, 16384u) << "the buffer is not among the lazy pages";
  EXPECT_LT(at_freeze, lazy / 8) << "the freeze hashed most of the memory";
  EXPECT_TRUE(eventually([&] { return !counter.running(); }, seconds(5)));
  int at_switch = last_count(log);
  EXPECT_TRUE(eventually([&] { return last_count(log) >= at_switch + 20; }, seconds(10)))
      << "the counter did not carry on at the destination";
  EXPECT_TRUE(contiguous(log)) << "a value was lost or repeated";
  auto report = nlohmann::json::parse(r.out);
  ::kill(report["destination_pid"].get<pid_t>(), SIGKILL);
}

// The service address moves with the server; the client connected before the migration keeps
// its connection, and every reply is the right one (nothing lost, nothing repeated).
void client_keeps_connection(Migrate* t, NetnsHosts& hosts, TempDir& dir,
                             const std::function<RunResult(pid_t)>& do_migrate,
                             const std::string& script = "server.py") {
  std::string svc = "198.18.0.100";
  ASSERT_EQ(hosts.sh_in('a', "ip addr add " + svc + "/24 dev va"), 0);
  Background server(hosts.in('a', {"/usr/bin/python3", dir / script, svc}), dir / "server.out",
                    dir / "server.err");
  ASSERT_TRUE(
      eventually([&] { return hosts.sh_in('a', "ss -ltn | grep -q 9000") == 0; }, seconds(10)));
  Background client(hosts.in('c', {"/usr/bin/python3", dir / "client.py", svc, "8"}),
                    dir / "client.out", dir / "client.err");
  // Migrate once the client's connection is up and talking.
  ASSERT_TRUE(
      eventually([&] { return hosts.sh_in('a', "ss -tn state established | grep -q :9000") == 0; },
                 seconds(30)));
  RunResult r = do_migrate(server.pid());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(client.wait_exit(seconds(40)), 0)
      << read_all(dir / "client.out") << read_all(dir / "client.err");
  EXPECT_GT(std::atoi(read_all(dir / "client.out").c_str()), 10);
  EXPECT_NE(hosts.sh_in('a', "ip -o addr show | grep -q " + svc), 0) << "source kept the address";
  EXPECT_EQ(hosts.sh_in('b', "ip -o addr show | grep -q " + svc), 0) << "destination lacks it";
  auto report = nlohmann::json::parse(r.out);
  ::kill(report["destination_pid"].get<pid_t>(), SIGKILL);
  (void)t;
}

// CR/TR of a multi-threaded server (main thread in accept, a thread per client in recv, a
// ticker): every thread is checkpointed and recorded, the client keeps its connection and
// every reply.
TEST_F(Migrate, CrtrMultiThreadedServerKeepsItsConnectedClient) {
  start_relived();
  client_keeps_connection(
      this, hosts_, dir_,
      [&](pid_t pid) {
        std::error_code ec;
        auto tasks =
            std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
        EXPECT_GE(std::distance(begin(tasks), end(tasks)), 3) << "the server is not threaded";
        RunResult r =
            migrate(pid, "crtr", {"--service-address", "198.18.0.100/24", "--tcp-established"});
        if (r.exit_code == 0) {
          auto report = nlohmann::json::parse(r.out);
          EXPECT_EQ(report.value("strategy", ""), "crtr") << r.out;
          EXPECT_GT(report["bytes_by_phase"]["log"].get<uint64_t>(), 0u) << r.out;
        }
        return r;
      },
      "threaded_server.py");
}

TEST_F(Migrate, PrecopyServerKeepsItsConnectedClient) {
  start_relived();
  client_keeps_connection(this, hosts_, dir_, [&](pid_t pid) {
    return migrate(pid, "precopy", {"--service-address", "198.18.0.100/24", "--tcp-established"});
  });
}

TEST_F(Migrate, StopCopyServerKeepsItsConnectedClient) {
  start_relived();
  client_keeps_connection(this, hosts_, dir_, [&](pid_t pid) {
    return migrate(pid, "stop-copy", {"--service-address", "198.18.0.100/24", "--tcp-established"});
  });
}

TEST_F(Migrate, PostcopyServerKeepsItsConnectedClient) {
  start_relived();
  client_keeps_connection(this, hosts_, dir_, [&](pid_t pid) {
    return migrate(pid, "postcopy", {"--service-address", "198.18.0.100/24", "--tcp-established"});
  });
}

TEST_F(Migrate, CrtrServerKeepsItsConnectedClient) {
  start_relived();
  client_keeps_connection(this, hosts_, dir_, [&](pid_t pid) {
    RunResult r =
        migrate(pid, "crtr", {"--service-address", "198.18.0.100/24", "--tcp-established"});
    if (r.exit_code == 0) {
      auto report = nlohmann::json::parse(r.out);
      // The log travelled after the checkpoint, and the replay rebuilt the memory.
      EXPECT_GT(report["bytes_by_phase"]["log"].get<uint64_t>(), 0u) << r.out;
      EXPECT_EQ(report["bytes_by_phase"].count("pages"), 0u) << r.out;
    }
    return r;
  });
}

// CR/TR: the destination dies while the log is being shipped; the source stops being recorded
// and runs on, untraced.
TEST_F(Migrate, CrtrSourceSurvivesDestinationDeath) {
  start_relived();
  std::string log = dir_ / "counter.log";
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", log}), "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 5; }, seconds(10)));
  FaultWhen killer([&] { return path_exists(dir_ / "stateb/relive-incoming-*/trace/header"); },
                   [&] { relived_->stop(); });
  RunResult r = migrate(counter.pid(), "crtr", {"--max-rounds", "1000"});
  EXPECT_TRUE(killer.join()) << "the log shipping never started";
  EXPECT_NE(r.exit_code, 0);
  expect_runs_on(counter, log);
  EXPECT_EQ(
      sh("grep -q 'TracerPid:[[:space:]]*0$' /proc/" + std::to_string(counter.pid()) + "/status"),
      0)
      << "the source is still traced";
}

// The replay at the destination takes another path than the recording (the process reads a
// shared file mapping another process keeps rewriting: input no log holds). The destination
// reports the divergence and the source runs on as if nothing had happened.
TEST_F(Migrate, CrtrDivergenceAtTheDestinationLeavesTheSourceRunning) {
  start_relived();
  std::string shared = dir_ / "shared", log = dir_ / "counter.log";
  write_all_to(shared, std::string(4096, '\0'));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int fd = ::open(shared.c_str(), O_WRONLY);
    for (uint64_t v = 1; !stop; ++v) {
      (void)::pwrite(fd, &v, sizeof v, 0);
      std::this_thread::sleep_for(milliseconds(2));
    }
    ::close(fd);
  });
  Background subject(hosts_.in('a', {test_bin_dir() + "/subjects/shared_reader", shared, log}),
                     "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 5; }, seconds(10)));
  RunResult r = migrate(subject.pid(), "crtr", {"--log-threshold", "100000"});
  stop = true;
  writer.join();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("divergence"), std::string::npos) << r.err;
  expect_runs_on(subject, log);
}

// The link dies in the middle of the log rounds (every packet between the hosts dropped): the
// source notices within --io-timeout, stops recording and runs on.
TEST_F(Migrate, CrtrLinkCutLeavesTheSourceRunning) {
  start_relived();
  std::string log = dir_ / "counter.log";
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", log}), "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 5; }, seconds(10)));
  FaultWhen cutter([&] { return path_exists(dir_ / "stateb/relive-incoming-*/trace/header"); },
                   [&] { EXPECT_EQ(cut_relived_link(hosts_, 'b'), 0); });
  RunResult r = migrate(counter.pid(), "crtr",
                        {"--max-rounds", "100000", "--log-threshold", "0", "--io-timeout", "3"});
  EXPECT_TRUE(cutter.join()) << "the log shipping never started";
  EXPECT_NE(r.exit_code, 0);
  expect_runs_on(counter, log);
  EXPECT_EQ(
      sh("grep -q 'TracerPid:[[:space:]]*0$' /proc/" + std::to_string(counter.pid()) + "/status"),
      0);
}

// A python3 process holding an in-memory sqlite3 database: after the move, the rows it inserted
// before are still there (it checks COUNT(*) against its own counter every tick).
TEST_F(Migrate, SqliteSessionKeepsItsData) {
  start_relived();
  write_all_to(dir_ / "db.py", R"PY(
import sqlite3, sys, time
db = sqlite3.connect(":memory:"); db.execute("create table t (n integer)")
n = 0
while True:
    n += 1; db.execute("insert into t values (?)", (n,))
    have = db.execute("select count(*), sum(n) from t").fetchone()
    ok = have == (n, n * (n + 1) // 2)
    open(sys.argv[1], "a").write(f"{n - 1}\n" if ok else "lost\n"); time.sleep(0.02)
)PY");
  std::string log = dir_ / "db.log";
  Background db(hosts_.in('a', {"/usr/bin/python3", dir_ / "db.py", log}), "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 10; }, seconds(10)));
  for (const char* strategy : {"crtr"}) {
    RunResult r = migrate(db.pid(), strategy, {"--log-threshold", "8192"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    int at = last_count(log);
    EXPECT_TRUE(eventually([&] { return last_count(log) >= at + 20; }, seconds(10)));
    EXPECT_TRUE(contiguous(log)) << "a row was lost (or the counter skipped)";
    ::kill(nlohmann::json::parse(r.out)["destination_pid"].get<pid_t>(), SIGKILL);
  }
}

TEST_F(Migrate, RefusesAnExpiredCertificate) {
  start_relived();
  ASSERT_EQ(run({relive_bin(), "keys", "init", dir_ / "keys", "--hosts", "stale", "--days", "0"})
                .exit_code,
            0);
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", dir_ / "c.log"}),
                     "/dev/null");
  RunResult r = run(hosts_.in('a', {relive_bin(), "migrate", "--pid", std::to_string(counter.pid()),
                                    "--to", relived_address(hosts_), "--strategy", "stop-copy",
                                    "--tls-dir", dir_ / "keys", "--name", "stale"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(counter.running());
  EXPECT_TRUE(eventually(
      [&] { return read_all(dir_ / "relived.err").find("expired") != std::string::npos; },
      seconds(10)))
      << read_all(dir_ / "relived.err") << r.err;
}

// `relive container migrate` moves a whole tree: a shell whose child is the counter.
TEST_F(Migrate, ContainerMigrateMovesAProcessTree) {
  start_relived();
  std::string log = dir_ / "counter.log";
  Background tree(
      hosts_.in(
          'a', {"/bin/sh", "-c", "/usr/bin/python3 " + dir_ / "counter.py" + " " + log + "; true"}),
      "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 10; }, seconds(10)));
  RunResult r =
      run(hosts_.in('a', {relive_bin(), "container", "migrate", "--pid", std::to_string(tree.pid()),
                          "--to", relived_address(hosts_), "--strategy", "precopy", "--tls-dir",
                          dir_ / "keys", "--name", "hosta", "--json"}),
          180);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int at_switch = last_count(log);
  EXPECT_TRUE(eventually([&] { return last_count(log) >= at_switch + 20; }, seconds(10)));
  EXPECT_TRUE(contiguous(log));
  EXPECT_FALSE(tree.running());
  auto report = nlohmann::json::parse(r.out);
  ::kill(report["destination_pid"].get<pid_t>(), SIGKILL);
}

// A process tree (a shell and its counter) in pre-copy; the link dies once the first round of
// memory went out (host b drops every packet of relived's port): the source's next exchange
// times out after --io-timeout, the error says so, and the tree runs on untouched.
TEST_F(Migrate, ContainerMigrateLinkCutLeavesTheTreeRunning) {
  start_relived();
  std::string log = dir_ / "counter.log";
  Background tree(
      hosts_.in(
          'a', {"/bin/sh", "-c", "/usr/bin/python3 " + dir_ / "counter.py" + " " + log + "; true"}),
      "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 5; }, seconds(10)));
  Background mig(
      hosts_.in('a', {relive_bin(), "container", "migrate", "--pid", std::to_string(tree.pid()),
                      "--to", relived_address(hosts_), "--strategy", "precopy", "--io-timeout", "3",
                      "--tls-dir", dir_ / "keys", "--name", "hosta"}),
      dir_ / "mig.out", dir_ / "mig.err");
  ASSERT_TRUE(eventually(
      [&] { return read_all(dir_ / "mig.err").find("round=1") != std::string::npos; }, seconds(60)))
      << read_all(dir_ / "mig.err");
  ASSERT_EQ(cut_relived_link(hosts_, 'b'), 0);
  int rc = mig.wait_exit(milliseconds(120000));
  std::string err = read_all(dir_ / "mig.err");
  EXPECT_NE(rc, 0) << err;
  EXPECT_NE(err.find("timed out"), std::string::npos) << err;
  // The last line is the error the operator sees.
  std::printf("[measure] link cut: %s", err.substr(err.rfind('\n', err.size() - 2) + 1).c_str());
  expect_runs_on(tree, log);
}

TEST_F(Migrate, RefusesATreeUnlessAskedForOne) {
  start_relived();
  Background tree(
      hosts_.in('a', {"/bin/sh", "-c",
                      "/usr/bin/python3 " + dir_ / "counter.py" + " " + dir_ / "c.log" + "; true"}),
      "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(dir_ / "c.log") >= 2; }, seconds(10)));
  RunResult r = migrate(tree.pid(), "stop-copy");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("relive container migrate"), std::string::npos) << r.err;
  EXPECT_TRUE(tree.running());
}

// A destination that fails (here: its relived dies when the images arrive) leaves the source
// running as if nothing had happened.
TEST_F(Migrate, SourceSurvivesDestinationDeath) {
  start_relived();
  std::string log = dir_ / "counter.log";
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", log}), "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 5; }, seconds(10)));
  // Kill relived as soon as it has a migration work dir, i.e. mid-migration.
  FaultWhen killer([&] { return path_exists(dir_ / "stateb/relive-incoming-*"); },
                   [&] { relived_->stop(); });
  RunResult r = migrate(counter.pid(), "stop-copy");
  EXPECT_TRUE(killer.join()) << "relived never made a work dir";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("migration failed"), std::string::npos) << r.err;
  expect_runs_on(counter, log);
}

TEST_F(Migrate, RefusesAPlaintextPeerAndTheSourceRuns) {
  start_relived();
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", dir_ / "c.log"}),
                     "/dev/null");
  RunResult r = migrate(counter.pid(), "stop-copy", {"--insecure"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(counter.running());
}

TEST_F(Migrate, RefusesACertificateFromAnotherCluster) {
  start_relived();
  ASSERT_EQ(run({relive_bin(), "keys", "init", dir_ / "foreign", "--hosts", "hosta"}).exit_code, 0);
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", dir_ / "c.log"}),
                     "/dev/null");
  RunResult r = run(hosts_.in('a', {relive_bin(), "migrate", "--pid", std::to_string(counter.pid()),
                                    "--to", relived_address(hosts_), "--strategy", "stop-copy",
                                    "--tls-dir", dir_ / "foreign", "--name", "hosta"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("relive:"), std::string::npos) << r.err;
  EXPECT_TRUE(counter.running());
}

// Bytes that are not TLS are refused before anything is read from them, reported, and the agent
// goes on to serve the next (real) migration.
TEST_F(Migrate, RelivedRefusesGarbageAndServesTheNextMigration) {
  start_relived();
  std::string garbage = "import socket; s = socket.create_connection(('" + hosts_.address('b') +
                        "', 7070)); s.sendall(b'RLPM' + bytes(200)); s.recv(100)";
  RunResult g = run(hosts_.in('c', {"/usr/bin/python3", "-c", garbage}), 30);
  (void)g;
  EXPECT_TRUE(eventually(
      [&] {
        return read_all(dir_ / "relived.err").find("refused a connection") != std::string::npos;
      },
      seconds(60)))
      << read_all(dir_ / "relived.err");
  std::string log = dir_ / "counter.log";
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", log}), "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 5; }, seconds(60)));
  RunResult r = migrate(counter.pid(), "stop-copy");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ::kill(nlohmann::json::parse(r.out)["destination_pid"].get<pid_t>(), SIGKILL);
}

TEST_F(Migrate, RefusesAServiceAddressTheSourceDoesNotHold) {
  start_relived();
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", dir_ / "c.log"}),
                     "/dev/null");
  RunResult r = migrate(counter.pid(), "stop-copy", {"--service-address", "198.18.0.77/24"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not on this host"), std::string::npos) << r.err;
  EXPECT_TRUE(counter.running());
}

}  // namespace
}  // namespace relive::testing
