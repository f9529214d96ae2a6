// Several migrations into one relived at once (issue 17): relived in one network-namespace
// host, the workloads and `relive migrate` in another; real CRIU, real TLS, real programs.
// Also: peers that stall do not delay anybody, --max-concurrent refuses the next migration with
// a clear error, and a workload already arriving cannot arrive twice.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "counter_subject.h"
#include "netns_hosts.h"
#include "relived_fixture.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

// Two peers that stall relived: one connects and says nothing, one sends half a TLS record.
// Prints "connected" once both are, then holds them open until killed.
const char* kStallers = R"(
import socket, sys, time
silent = socket.create_connection((sys.argv[1], int(sys.argv[2])))
half = socket.create_connection((sys.argv[1], int(sys.argv[2])))
half.sendall(b"\x16\x03\x01\x00\xc8" + b"x" * 20)
print("connected", flush=True)
time.sleep(100000)
)";

class ConcurrentMigrate : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, CRIU)";
    ASSERT_NO_FATAL_FAILURE(make_two_hosts(hosts_, dir_));
    write_all_to(dir_ / "counter.py", kCounter);
    write_all_to(dir_ / "stallers.py", kStallers);
  }
  void TearDown() override {
    counters_.clear();
    kill_test_processes(&relived_, dir_);
  }

  // relived in host b, serving until stopped, with `extra` flags.
  void start_relived(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--work-dir",  dir_ / "stateb", "--tls-dir",
                                     dir_ / "keys", "--name",        "hostb"};
    args.insert(args.end(), extra.begin(), extra.end());
    relive::testing::start_relived(hosts_, dir_, args, &relived_, /*once=*/0);
  }

  // Starts counter `i` in host a (log counter<i>.log) and waits until it counts.
  Background& start_counter(int i) {
    std::string log = counter_log(i);
    counters_.push_back(std::make_unique<Background>(
        hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", log}), "/dev/null"));
    EXPECT_TRUE(eventually([&] { return last_count(log) >= 10; }, seconds(20)));
    return *counters_.back();
  }
  std::string counter_log(int i) { return dir_ / ("counter" + std::to_string(i) + ".log"); }

  std::vector<std::string> migrate_argv(pid_t pid, const std::string& strategy,
                                        const std::string& label,
                                        const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {relive_bin(),  "migrate",
                                     "--pid",       std::to_string(pid),
                                     "--to",        relived_address(hosts_),
                                     "--strategy",  strategy,
                                     "--label",     label,
                                     "--json",      "--tls-dir",
                                     dir_ / "keys", "--name",
                                     "hosta",       "--peer-name",
                                     "hostb"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return hosts_.in('a', argv);
  }

  // After a successful migration: the source is gone, the counter carries on at the
  // destination, nothing lost or repeated. Kills the migrated copy.
  void expect_carried_on(const RunResult& r, Background& source, int i,
                         const std::string& strategy) {
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto report = nlohmann::json::parse(r.out);
    EXPECT_EQ(report["strategy"], strategy);
    EXPECT_TRUE(eventually([&] { return !source.running(); }, seconds(10)));
    int at_switch = last_count(counter_log(i));
    EXPECT_TRUE(
        eventually([&] { return last_count(counter_log(i)) >= at_switch + 20; }, seconds(30)))
        << "counter " << i << " did not carry on at the destination";
    EXPECT_TRUE(contiguous(counter_log(i))) << "counter " << i << " lost or repeated a value";
    pid_t dest = report["destination_pid"].get<pid_t>();
    ASSERT_GT(dest, 0);
    ::kill(dest, SIGKILL);
  }

  // A migration of counter 0 that holds its place at relived for a while (CR/TR shipping log
  // rounds); returns once relived receives its log.
  std::unique_ptr<Background> hold_a_migration(const std::string& label) {
    Background& c = start_counter(0);
    auto holder = std::make_unique<Background>(
        migrate_argv(c.pid(), "crtr", label, {"--log-threshold", "0", "--max-rounds", "100000"}),
        dir_ / "holder.out", dir_ / "holder.err");
    EXPECT_TRUE(eventually(
        [&] { return path_exists(dir_ / "stateb/relive-incoming-*/trace/header"); }, seconds(60)))
        << read_all(dir_ / "holder.err");
    return holder;
  }

  // Ends the holding migration (its source dies: relived sees the link go) and waits until
  // relived has given its place back.
  // A refused migration's failure is logged too: it is the next failure that counts.
  void end_holder(std::unique_ptr<Background>* holder) {
    auto failures = [&] {
      std::string log = read_all(dir_ / "relived.err");
      size_t n = 0;
      for (size_t at = log.find("failed"); at != std::string::npos; at = log.find("failed", at + 1))
        ++n;
      return n;
    };
    size_t before = failures();
    (*holder)->stop();
    EXPECT_TRUE(eventually([&] { return failures() > before; }, seconds(60)))
        << read_all(dir_ / "relived.err");
  }

  NetnsHosts hosts_{"rcc" + std::to_string(::getpid() % 100000), 17};
  TempDir dir_;
  std::unique_ptr<Background> relived_;
  std::vector<std::unique_ptr<Background>> counters_;
};

// Four migrations at once (two stop-copy, one precopy, one CR/TR) while two peers stall
// relived: every workload arrives intact, and relived serves a fifth one afterwards. The
// stallers may hold their workers for relived's whole I/O timeout (120 s, longer than the
// sources' own 60 s): a relived that handshook on its accept loop would fail the migrations.
TEST_F(ConcurrentMigrate, FourAtOnceWhilePeersStall) {
  start_relived({"--io-timeout", "120"});
  Background stallers(hosts_.in('a', {"/usr/bin/python3", dir_ / "stallers.py", hosts_.address('b'),
                                      std::to_string(kRelivedPort)}),
                      dir_ / "stallers.out", dir_ / "stallers.err");
  ASSERT_TRUE(eventually(
      [&] { return read_all(dir_ / "stallers.out").find("connected") != std::string::npos; },
      seconds(10)))
      << read_all(dir_ / "stallers.err");
  const std::vector<std::string> strategies = {"stop-copy", "stop-copy", "precopy", "crtr"};
  std::vector<Background*> sources;
  for (int i = 0; i < 4; ++i) sources.push_back(&start_counter(i));
  ASSERT_FALSE(HasFailure());
  std::vector<std::future<RunResult>> runs;
  for (int i = 0; i < 4; ++i) {
    auto argv = migrate_argv(sources[i]->pid(), strategies[i], "w" + std::to_string(i));
    runs.push_back(std::async(std::launch::async, [argv] { return run(argv, 300); }));
  }
  for (int i = 0; i < 4; ++i) expect_carried_on(runs[i].get(), *sources[i], i, strategies[i]);
  // One JSON line per migration, whole.
  std::istringstream out(read_all(dir_ / "relived.out"));
  std::set<std::string> names;
  for (std::string line; std::getline(out, line);) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << "not one JSON object: " << line;
    EXPECT_EQ(j["event"], "migrated");
    names.insert(j["name"].get<std::string>());
  }
  EXPECT_EQ(names, (std::set<std::string>{"w0", "w1", "w2", "w3"}));
  EXPECT_TRUE(stallers.running()) << "the stallers are still connected";
  // And a fifth, with the stallers still there.
  Background& fifth = start_counter(4);
  expect_carried_on(run(migrate_argv(fifth.pid(), "stop-copy", "w4"), 300), fifth, 4, "stop-copy");
  // SIGTERM: no migration runs; relived drops the stallers and exits.
  stallers.stop();
  ::kill(relived_->pid(), SIGTERM);
  EXPECT_EQ(relived_->wait_exit(seconds(180)), 0) << read_all(dir_ / "relived.err");
}

// --max-concurrent 1: a second migration while one runs is refused with a clear error (and its
// workload runs on at the source); relived serves the next one once the first has ended.
TEST_F(ConcurrentMigrate, MaxConcurrentRefusesTheNextThenServesAgain) {
  start_relived({"--max-concurrent", "1"});
  auto holder = hold_a_migration("first");
  ASSERT_FALSE(HasFailure());
  Background& second = start_counter(1);
  RunResult r = run(migrate_argv(second.pid(), "stop-copy", "second"), 300);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("destination busy: 1 migrations in progress (max_concurrent 1)"),
            std::string::npos)
      << r.err;
  ASSERT_TRUE(second.running());
  int before = last_count(counter_log(1));
  EXPECT_TRUE(eventually([&] { return last_count(counter_log(1)) >= before + 10; }, seconds(10)));
  end_holder(&holder);
  expect_carried_on(run(migrate_argv(second.pid(), "stop-copy", "second"), 300), second, 1,
                    "stop-copy");
}

// A migration naming a workload that is already arriving is refused.
TEST_F(ConcurrentMigrate, DuplicateWorkloadNameIsRefused) {
  start_relived();
  auto holder = hold_a_migration("same");
  ASSERT_FALSE(HasFailure());
  Background& twin = start_counter(1);
  RunResult r = run(migrate_argv(twin.pid(), "stop-copy", "same"), 300);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("workload 'same' is already arriving here"), std::string::npos) << r.err;
  EXPECT_TRUE(twin.running());
  end_holder(&holder);
}

}  // namespace
}  // namespace relive::testing
