// relived's metrics as an operator sees them: a real Prometheus server (Debian's package) scrapes
// relived every second while a migration arrives and while an HA pair runs, and the values are
// read back through Prometheus's HTTP API.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "counter_subject.h"
#include "ha_pair_fixture.h"
#include "netns_hosts.h"
#include "prometheus_server.h"
#include "relived_fixture.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

constexpr int kMetricsPort = 9477;

class MetricsMigration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, CRIU)";
    if (::access(kPrometheusBin, X_OK) != 0)
      FAIL() << kPrometheusBin << " is missing: scripts/bootstrap.sh installs it";
    ASSERT_TRUE(hosts_.ok()) << "could not create the test hosts";
    write_all_to(dir_ / "counter.py", kCounter);
  }
  void TearDown() override {
    prometheus_.reset();
    kill_test_processes(&relived_, dir_);
  }

  std::string metrics_target() const {
    return hosts_.address('b') + ":" + std::to_string(kMetricsPort);
  }

  NetnsHosts hosts_{"rmx" + std::to_string(::getpid() % 100000), 72};
  TempDir dir_;
  std::unique_ptr<Background> relived_;
  std::unique_ptr<PrometheusServer> prometheus_;
};

// The migration's downtime, as relive migrate reports it, shows in Prometheus: one observation
// in the downtime histogram whose sum matches the report, and the started and succeeded
// counters of its strategy.
TEST_F(MetricsMigration, PrometheusShowsTheMigrationsDowntime) {
  // Not --once: relived keeps serving its metrics after the migration.
  ASSERT_NO_FATAL_FAILURE(relive::testing::start_relived(
      hosts_, dir_,
      {"--work-dir", dir_ / "stateb", "--insecure", "--metrics-listen", metrics_target()},
      &relived_, /*once=*/0));
  prometheus_ = std::make_unique<PrometheusServer>(hosts_, 'c', dir_.path(),
                                                   std::vector<std::string>{metrics_target()});
  ASSERT_TRUE(prometheus_->wait_for(
      "up{job=\"relived\"}", [](double v) { return v == 1; }, seconds(60)))
      << prometheus_->log();

  std::string log = dir_ / "counter.log";
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", log}), "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 10; }, seconds(10)));
  RunResult r = run(
      hosts_.in('a', {relive_bin(), "migrate", "--pid", std::to_string(counter.pid()), "--to",
                      relived_address(hosts_), "--strategy", "stop-copy", "--json", "--insecure"}),
      180);
  ASSERT_EQ(r.exit_code, 0) << r.err << read_all(dir_ / "relived.err");
  auto report = nlohmann::json::parse(r.out);
  double downtime_ms = report["downtime_ms"].get<double>();
  ASSERT_GT(downtime_ms, 0);
  pid_t dest = report.value("destination_pid", 0);

  const std::string sel = "{strategy=\"stop-copy\"}";
  EXPECT_TRUE(prometheus_->wait_for(
      "relive_migration_downtime_seconds_count" + sel, [](double v) { return v == 1; },
      seconds(60)))
      << prometheus_->log();
  std::optional<double> sum = prometheus_->value("relive_migration_downtime_seconds_sum" + sel);
  ASSERT_TRUE(sum.has_value());
  EXPECT_GT(*sum, 0);
  std::printf("downtime: %.2f ms in Prometheus, %.2f ms reported by relive migrate\n", *sum * 1000,
              downtime_ms);
  // The destination's figure (the source's frozen time at migrate.restore plus its own time to
  // the resume) differs from the source's by network latencies on one bridge.
  EXPECT_NEAR(*sum * 1000, downtime_ms, std::max(25.0, downtime_ms * 0.25))
      << "Prometheus: " << *sum * 1000 << " ms, relive migrate: " << downtime_ms << " ms";
  EXPECT_EQ(prometheus_->value("relive_migrations_started_total" + sel), 1.0);
  EXPECT_EQ(prometheus_->value("relive_migrations_succeeded_total" + sel), 1.0);
  EXPECT_FALSE(prometheus_->value("relive_migrations_failed_total" + sel).has_value());
  std::optional<double> bytes = prometheus_->value("relive_migration_bytes_received_total" + sel);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_GT(*bytes, 4096);
  EXPECT_EQ(prometheus_->value("relive_migration_duration_seconds_count" + sel), 1.0);
  EXPECT_TRUE(prometheus_->wait_for(
      "relive_migrations_in_progress", [](double v) { return v == 0; }, seconds(30)));
  if (dest > 0) ::kill(dest, SIGKILL);
}

// The HA pair (redis as the workload, as in ha_pair_test.cc) with both relived scraped: the
// roles, the epochs, their frozen time, the lease and the output buffer show in Prometheus.
class MetricsHa : public HaPairFixture {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/redis-server", X_OK) != 0) GTEST_SKIP() << "redis is not installed";
    if (::access(kPrometheusBin, X_OK) != 0)
      FAIL() << kPrometheusBin << " is missing: scripts/bootstrap.sh installs it";
    HaPairFixture::SetUp();
  }
  void TearDown() override {
    prometheus_.reset();
    HaPairFixture::TearDown();
  }
  void kill_leftovers() override {
    sh("pkill -9 -f 'redis-server \\*:" + std::to_string(kPort) + "' 2>/dev/null; true");
  }
  std::string workload_toml() const override { return redis_workload_toml(kPort); }
  std::string target(int i) const {
    return hosts_.address(i == 0 ? 'a' : 'b') + ":" + std::to_string(kMetricsPort);
  }
  // HaPairFixture::start_peer with the metrics endpoint on.
  void start_peer_with_metrics(int i) {
    std::string name = i == 0 ? "alpha" : "beta";
    relived_[i] = std::make_unique<Background>(
        hosts_.in(i == 0 ? 'a' : 'b',
                  {relived_bin(), "--ha-config", dir_ / "pair.toml", "--name", name, "--state-dir",
                   dir_ / ("state-" + name), "--metrics-listen", target(i)}),
        dir_ / (name + ".out"), dir_ / (name + ".err"));
  }
  std::string of(const std::string& metric, int i, const std::string& labels = "") const {
    return metric + "{instance=\"" + target(i) + "\"" + (labels.empty() ? "" : "," + labels) + "}";
  }

  const int kPort = 20000 + ::getpid() % 10000;
  std::unique_ptr<PrometheusServer> prometheus_;
};

TEST_F(MetricsHa, PrometheusShowsRolesEpochsAndTheLease) {
  prometheus_ = std::make_unique<PrometheusServer>(hosts_, 'c', dir_.path(),
                                                   std::vector<std::string>{target(0), target(1)});
  start_peer_with_metrics(0);
  ASSERT_TRUE(eventually([&] { return role(0) == "primary"; }, seconds(30))) << logs();
  start_peer_with_metrics(1);
  ASSERT_TRUE(eventually([&] { return protected_by_backup(0); }, seconds(30))) << logs();

  auto is_one = [](double v) { return v == 1; };
  auto positive = [](double v) { return v > 0; };
  EXPECT_TRUE(
      prometheus_->wait_for(of("relive_ha_role", 0, "role=\"primary\""), is_one, seconds(60)))
      << prometheus_->log();
  EXPECT_TRUE(
      prometheus_->wait_for(of("relive_ha_role", 1, "role=\"backup\""), is_one, seconds(60)));
  EXPECT_EQ(prometheus_->value(of("relive_ha_role", 0, "role=\"backup\"")), 0.0);
  EXPECT_TRUE(prometheus_->wait_for(of("relive_ha_epochs_total", 0, "side=\"primary\""), positive,
                                    seconds(60)));
  EXPECT_TRUE(prometheus_->wait_for(of("relive_ha_epochs_total", 1, "side=\"backup\""), positive,
                                    seconds(60)));
  // Epochs keep coming: the counter grows between scrapes.
  EXPECT_TRUE(prometheus_->wait_for(
      "increase(" + of("relive_ha_epochs_total", 0, "side=\"primary\"") + "[5s])", positive,
      seconds(60)));
  EXPECT_TRUE(
      prometheus_->wait_for(of("relive_ha_epoch_frozen_seconds_count", 0), positive, seconds(60)));
  EXPECT_TRUE(
      prometheus_->wait_for(of("relive_ha_epoch_frozen_seconds_sum", 0), positive, seconds(60)));
  EXPECT_TRUE(prometheus_->wait_for(of("relive_ha_lease_held", 0), is_one, seconds(60)));
  EXPECT_EQ(prometheus_->value(of("relive_ha_lease_held", 1)), 0.0);
  EXPECT_TRUE(prometheus_->wait_for(of("relive_ha_protected", 0), is_one, seconds(60)));
  EXPECT_TRUE(prometheus_->wait_for(of("relive_ha_committed_epoch", 0), positive, seconds(60)));
  EXPECT_TRUE(prometheus_->wait_for(
      of("relive_ha_backup_lag_seconds", 0), [](double v) { return v >= 0 && v < 30; },
      seconds(60)));
  EXPECT_TRUE(prometheus_->wait_for(
      of("relive_ha_output_held_packets", 0), [](double v) { return v >= 0; }, seconds(60)));
  EXPECT_TRUE(
      prometheus_->wait_for(of("relive_ha_lease_remaining_seconds", 0), positive, seconds(60)));
}

}  // namespace
}  // namespace relive::testing
