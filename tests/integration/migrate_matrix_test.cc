// Every migration strategy against every kind of subject that breaks migrations in practice
// (zdtm style: the subjects in tests/subjects/mig_*.c keep working while they move and check
// their own state once told they arrived): vDSO clock reads in a tight loop, threads, timers and
// pending signals, kernel-held descriptor state, a large heap being rewritten, a process
// blocked in a system call at the switch-over. Each must carry on with its state intact at the
// destination, or be refused with a clear error while the source runs on unharmed.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "netns_hosts.h"
#include "relived_fixture.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

struct Subject {
  const char* name;  // test name part
  const char* program;
  std::vector<std::string> args;
};

const Subject kSubjects[] = {
    {"VdsoClockLoop", "mig_vdso", {}},
    {"Threads", "mig_threads", {}},
    {"TimersAndSignals", "mig_timers", {}},
    {"PipesSocketsDeletedAndAppendedFiles", "mig_fds", {}},
    {"LargeHeapRewritten", "mig_heap", {"512"}},
    {"BlockedInRead", "mig_blocked", {"read"}},
    {"BlockedInEpollWait", "mig_blocked", {"epoll"}},
    {"BlockedInNanosleep", "mig_blocked", {"sleep"}},
};
const std::vector<std::string> kStrategies = {"crtr", "precopy", "postcopy", "stop-copy", "auto"};

using Case = std::tuple<std::string, int>;  // strategy, index in kSubjects

class MigrateMatrix : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, CRIU)";
    ASSERT_NO_FATAL_FAILURE(make_two_hosts(hosts_, dir_));
  }
  void TearDown() override { kill_test_processes(&relived_, dir_); }

  void start_relived() {
    relive::testing::start_relived(
        hosts_, dir_,
        {"--work-dir", dir_ / "stateb", "--tls-dir", dir_ / "keys", "--name", "hostb"}, &relived_);
  }

  std::string result() const { return read_all(dir_ / "result"); }

  // Tells the subject `pid` it has arrived and waits for its verdict.
  std::string verdict_of(pid_t pid) {
    ::kill(pid, SIGUSR1);
    eventually([&] { return result().starts_with("OK") || result().starts_with("FAIL"); },
               seconds(120));
    return result();
  }

  NetnsHosts hosts_{"rlm" + std::to_string(::getpid() % 100000), 0};
  TempDir dir_;
  std::unique_ptr<Background> relived_;
};

TEST_P(MigrateMatrix, CarriesOnOrIsRefusedWithTheSourceRunning) {
  const auto& [strategy, index] = GetParam();
  const Subject& subject = kSubjects[index];
  start_relived();
  std::vector<std::string> argv = {test_bin_dir() + "/subjects/" + subject.program,
                                   dir_ / "result"};
  argv.insert(argv.end(), subject.args.begin(), subject.args.end());
  Background src(hosts_.in('a', argv), "/dev/null");
  ASSERT_TRUE(eventually([&] { return result().starts_with("READY"); }, seconds(60))) << result();
  pid_t source = std::atoi(result().c_str() + 6);
  ASSERT_GT(source, 0);

  RunResult r =
      run(hosts_.in('a', {relive_bin(), "migrate", "--pid", std::to_string(source), "--to",
                          relived_address(hosts_), "--strategy", strategy, "--json", "--tls-dir",
                          dir_ / "keys", "--name", "hosta", "--peer-name", "hostb"}),
          300);
  ASSERT_EQ(r.exit_code, 0) << r.err << read_all(dir_ / "relived.err");
  auto report = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << r.out;
  pid_t dest = report.value("destination_pid", 0);
  ASSERT_GT(dest, 0) << r.out;
  EXPECT_TRUE(eventually([&] { return !src.running(); }, seconds(10)))
      << "the source must end after the switch-over";
  EXPECT_EQ(verdict_of(dest), "OK\n")
      << "strategy " << report.value("strategy", "") << " (" << report.value("reason", "") << ")\n"
      << r.err;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s = std::get<0>(info.param);
  std::erase(s, '-');
  s[0] = static_cast<char>(std::toupper(s[0]));
  return s + "_" + kSubjects[std::get<1>(info.param)].name;
}

INSTANTIATE_TEST_SUITE_P(
    AllStrategies, MigrateMatrix,
    ::testing::Combine(::testing::ValuesIn(kStrategies),
                       ::testing::Range(0, static_cast<int>(std::size(kSubjects)))),
    case_name);

}  // namespace
}  // namespace relive::testing
