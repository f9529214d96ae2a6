// --max-bandwidth end to end: a subject whose heap is random bytes (LZ4 cannot shrink it) moves
// between two network-namespace hosts with each process strategy under a 20 MB/s cap. The report
// must state the cap, and the achieved rate of what the source sent (bytes over the time the
// link was busy, transfer/rate_limit.h) must honour it: at most 10 % above, and not crawling
// (at least half of it). The subject must arrive whole.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "netns_hosts.h"
#include "relived_fixture.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

constexpr uint64_t kCap = 20000000;  // bytes/s
constexpr uint64_t kHeapMib = 32;

class MigrateBandwidth : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, CRIU)";
    ASSERT_NO_FATAL_FAILURE(make_two_hosts(hosts_, dir_));
  }
  void TearDown() override { kill_test_processes(&relived_, dir_); }

  std::string result() const { return read_all(dir_ / "result"); }

  // After a successful migration: the source is gone, and the subject at the destination,
  // asked to check itself, finds every page whole.
  void expect_arrived_whole(Background& src, const nlohmann::json& report, const RunResult& r) {
    pid_t dest = report.value("destination_pid", 0);
    ASSERT_GT(dest, 0) << r.out;
    EXPECT_TRUE(eventually([&] { return !src.running(); }, seconds(30)))
        << "the source must end after the switch-over";
    ::kill(dest, SIGUSR1);
    EXPECT_TRUE(eventually(
        [&] { return result().starts_with("OK") || result().starts_with("FAIL"); }, seconds(120)));
    EXPECT_EQ(result(), "OK\n") << r.err;
  }

  NetnsHosts hosts_{"rlbw" + std::to_string(::getpid() % 10000), 0};
  TempDir dir_;
  std::unique_ptr<Background> relived_;
};

TEST_P(MigrateBandwidth, HonoursTheCapAndReportsIt) {
  const std::string strategy = GetParam();
  relive::testing::start_relived(
      hosts_, dir_, {"--work-dir", dir_ / "stateb", "--tls-dir", dir_ / "keys", "--name", "hostb"},
      &relived_);
  Background src(hosts_.in('a', {test_bin_dir() + "/subjects/mig_random", dir_ / "result",
                                 std::to_string(kHeapMib), "16"}),
                 "/dev/null");
  ASSERT_TRUE(eventually([&] { return result().starts_with("READY"); }, seconds(60))) << result();
  pid_t source = std::atoi(result().c_str() + 6);
  ASSERT_GT(source, 0);

  RunResult r = run(hosts_.in('a', {relive_bin(), "migrate", "--pid", std::to_string(source),
                                    "--to", relived_address(hosts_), "--strategy", strategy,
                                    "--max-bandwidth", std::to_string(kCap), "--json", "--tls-dir",
                                    dir_ / "keys", "--name", "hosta", "--peer-name", "hostb"}),
                    300);
  ASSERT_EQ(r.exit_code, 0) << r.err << read_all(dir_ / "relived.err");
  auto report = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << r.out;
  std::printf("%s report: %s\n", strategy.c_str(), r.out.c_str());  // the figures, for the log
  EXPECT_EQ(report.value("strategy", ""), strategy);
  EXPECT_EQ(report.value("max_bandwidth", uint64_t{0}), kCap);
  // The whole heap crossed the metered link (post-copy: through the page-server relay).
  uint64_t bytes = report.value("link_bytes", uint64_t{0});
  EXPECT_GE(bytes, kHeapMib << 20) << r.out;
  double rate = report.value("link_rate", 0.0);
  EXPECT_LE(rate, kCap * 1.10) << r.out << "\n" << r.err;
  EXPECT_GE(rate, kCap * 0.5) << r.out << "\n" << r.err;
  if (strategy == "postcopy")  // CRIU's page server behind relive's metering relay
    EXPECT_NE(r.err.find("phase=page-server relay"), std::string::npos) << r.err;

  expect_arrived_whole(src, report, r);
}

// `auto` picks CR/TR for a process that dirties its memory faster than pre-copy could chase;
// two seconds after it is ready its input rises to ~16 MB/s, twice the 8 MB/s cap: the log
// outgrows the link, and auto leaves CR/TR for post-copy by itself. The migration succeeds and
// the process arrives whole (it was never lost: the source ran on while CR/TR was abandoned).
TEST_F(MigrateBandwidth, AutoLeavesCrtrWhenTheLogOutgrowsTheCap) {
  relive::testing::start_relived(
      hosts_, dir_, {"--work-dir", dir_ / "stateb", "--tls-dir", dir_ / "keys", "--name", "hostb"},
      &relived_);
  // 40 MiB rewriting 64 pages per 10 ms; 160 KiB of getrandom per 10 ms after 2 s.
  Background src(hosts_.in('a', {test_bin_dir() + "/subjects/mig_random", dir_ / "result", "40",
                                 "64", "160", "2000"}),
                 "/dev/null");
  ASSERT_TRUE(eventually([&] { return result().starts_with("READY"); }, seconds(60))) << result();
  pid_t source = std::atoi(result().c_str() + 6);
  ASSERT_GT(source, 0);
  RunResult r = run(hosts_.in('a', {relive_bin(), "migrate", "--pid", std::to_string(source),
                                    "--to", relived_address(hosts_), "--strategy", "auto",
                                    "--max-bandwidth", "8000000", "--json", "--tls-dir",
                                    dir_ / "keys", "--name", "hosta", "--peer-name", "hostb"}),
                    300);
  ASSERT_EQ(r.exit_code, 0) << r.err << read_all(dir_ / "relived.err");
  auto report = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << r.out;
  std::printf("auto report: %s\n", r.out.c_str());
  std::string reason = report.value("reason", "");
  EXPECT_EQ(report.value("strategy", ""), "postcopy") << reason;
  EXPECT_NE(reason.find("CR/TR ships the input"), std::string::npos) << reason;  // chose CR/TR
  EXPECT_NE(reason.find("outgrew the link"), std::string::npos) << reason;       // then left it
  EXPECT_NE(r.err.find("auto: switching from crtr to postcopy"), std::string::npos) << r.err;

  expect_arrived_whole(src, report, r);
}

// A cap so low that one bulk segment could not cross within the I/O timeout is refused before
// anything is touched (the destination would time out mid-segment).
TEST(MigrateBandwidthOption, RefusesACapTooLowForTheIoTimeout) {
  RunResult r =
      run({relive_bin(), "migrate", "--pid", std::to_string(::getpid()), "--to", "198.18.0.2:7070",
           "--insecure", "--strategy", "stop-copy", "--max-bandwidth", "1000"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--max-bandwidth 1000 B/s is too low"), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(Strategies, MigrateBandwidth,
                         ::testing::Values("stop-copy", "precopy", "postcopy", "crtr"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string s = info.param;
                           std::erase(s, '-');
                           return s;
                         });

}  // namespace
}  // namespace relive::testing
