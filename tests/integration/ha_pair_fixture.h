// The relived HA pair test bed, whatever the workload: hosts a, b, c (network namespaces joined
// by a bridge, 198.18.60.1-3), a real etcd on host c holding the fence, relived for peer alpha on
// host a and beta on host b, `relive ha status` from host c. A test derives, supplies the
// [workload] section, and kills what its workload leaves behind.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "netns_hosts.h"
#include "test_util.h"

namespace relive::testing {

// Clients write "KEY MS" per acknowledged write (MS: the client's clock in milliseconds).
struct Ack {
  long key;
  long ms;
};

inline std::vector<Ack> acks_in(const std::string& path) {
  std::vector<Ack> out;
  std::istringstream in(read_all(path));
  Ack a{};
  while (in >> a.key >> a.ms) out.push_back(a);
  return out;
}

// The longest time between two consecutive acknowledged writes: the outage a client saw.
inline long longest_gap_ms(const std::vector<Ack>& acks) {
  long gap = 0;
  for (size_t i = 1; i < acks.size(); ++i) gap = std::max(gap, acks[i].ms - acks[i - 1].ms);
  return gap;
}

class HaPairFixture : public ::testing::Test {
 protected:
  using seconds = std::chrono::seconds;

  // The [workload] table of the pair's config.
  virtual std::string workload_toml() const = 0;
  // Kills whatever workload relived left running (relived leaves it when it is killed).
  virtual void kill_leftovers() = 0;

  static std::string relived_bin() { return relive_bin() + "d"; }

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, iptables)";
    if (::access("/usr/bin/etcd", X_OK) != 0) GTEST_SKIP() << "/usr/bin/etcd is not installed";
    ASSERT_TRUE(hosts_.ok()) << "could not create the test hosts";
    ASSERT_EQ(run({relive_bin(), "keys", "init", dir_ / "keys", "--hosts", "alpha,beta,mallory"})
                  .exit_code,
              0);
    start_etcd();
    write_all_to(dir_ / "pair.toml", config());
  }
  void TearDown() override {
    for (auto& r : relived_) r.reset();
    kill_leftovers();
    etcd_.reset();
    sh("rm -rf " + etcd_dir_);
    sh("for n in " + netns_ + "-alpha " + netns_ +
       "-beta; do ip netns del $n 2>/dev/null; done; true");
  }

  // 2 s, not etcd's 1 s minimum: the primary renews every third of the TTL, and on a loaded
  // 2-core machine two slow renewals in a row would fence a healthy primary (bench/ha.py
  // measures with 1 s on a quiet machine).
  static constexpr int kLeaseTtl = 2;
  std::string service() const { return "198.18.60.10"; }

  // A named network namespace (ip netns) called `name` exists.
  static bool netns_exists(const std::string& name) {
    std::string list = run({"/usr/sbin/ip", "netns", "list"}).out;
    for (size_t at = list.find(name); at != std::string::npos; at = list.find(name, at + 1)) {
      bool starts = at == 0 || list[at - 1] == '\n';
      char after = at + name.size() < list.size() ? list[at + name.size()] : '\n';
      if (starts && (after == '\n' || after == ' ')) return true;
    }
    return false;
  }

  // Before start_pair(): rewrites the pair's config with this failure timeout. The primary gives
  // up on a silent backup (and serves unprotected, as Remus does) after max(2 s, 2 x this), so a
  // test that holds the backup silent and expects output held must look within less than that,
  // whatever the load delays its client by.
  void use_failure_timeout_ms(uint32_t ms) {
    failure_timeout_ms_ = ms;
    write_all_to(dir_ / "pair.toml", config());
  }
  uint32_t failure_timeout_ms_ = 300;
  // Before start_pair(): how many epochs the primary may have shipped and not yet acknowledged.
  void use_max_epochs_in_flight(uint32_t n) {
    max_epochs_in_flight_ = n;
    write_all_to(dir_ / "pair.toml", config());
  }
  uint32_t max_epochs_in_flight_ = 2;
  // Before start_pair(): the largest delta epoch the backup accepts.
  void use_max_epoch_bytes(uint64_t n) {
    max_epoch_bytes_ = n;
    write_all_to(dir_ / "pair.toml", config());
  }
  uint64_t max_epoch_bytes_ = 256ull << 20;

  // A [workload] of redis-server on `port` with AOF (every acknowledged write in the HA state),
  // working in dir_/w, holding service() in the pair's netns.
  std::string redis_workload_toml(int port) const {
    return fmt::format(R"([workload]
command = ["/usr/bin/redis-server", "--port", "{port}", "--save", "", "--appendonly", "yes",
           "--protected-mode", "no"]
directory = "{dir}"
service_address = "{svc}/24"
netns = "{ns}"
)",
                       fmt::arg("ns", netns_), fmt::arg("port", port),
                       fmt::arg("dir", std::string(dir_ / "w")), fmt::arg("svc", service()));
  }

  static std::string redis_writer_bin() { return test_bin_dir() + "/subjects/redis_writer"; }
  // redis_writer's check, from host c, of the acknowledged writes listed in `acks` (key prefix
  // "k") against the service on `port`: exit code 0 when every one is there.
  RunResult verify_redis_acks(int port, const std::string& acks) const {
    return run(hosts_.in('c', {"/bin/sh", "-c",
                               redis_writer_bin() + " verify " + service() + " " +
                                   std::to_string(port) + " k < " + acks}),
               120);
  }

  virtual std::string config() const {
    return fmt::format(R"(tls_dir = "{keys}"
epoch_ms = 50
heartbeat_ms = 50
failure_timeout_ms = {ft}
[[peers]]
name = "alpha"
address = "{a}:7411"
[[peers]]
name = "beta"
address = "{b}:7411"
[etcd]
endpoints = ["http://{c}:2379"]
lease_key = "/relive/ha/{ns}/primary"
lease_ttl_s = {ttl}
[limits]
max_epochs_in_flight = {mif}
max_epoch_bytes = {meb}
)",
                       fmt::arg("keys", std::string(dir_ / "keys")),
                       fmt::arg("a", hosts_.address('a')), fmt::arg("b", hosts_.address('b')),
                       fmt::arg("c", hosts_.address('c')), fmt::arg("ns", netns_),
                       fmt::arg("ttl", kLeaseTtl), fmt::arg("ft", failure_timeout_ms_),
                       fmt::arg("mif", max_epochs_in_flight_), fmt::arg("meb", max_epoch_bytes_)) +
           workload_toml();
  }

  void start_etcd() {
    std::string url = "http://" + hosts_.address('c') + ":2379";
    // Short election timeouts let etcd grant 1 s leases (its minimum is 1.5 election timeouts).
    etcd_ = std::make_unique<Background>(
        hosts_.in(
            'c',
            {"/usr/bin/etcd", "--name", "t", "--data-dir", etcd_dir_, "--listen-client-urls", url,
             "--advertise-client-urls", url, "--listen-peer-urls", "http://127.0.0.1:2380",
             "--initial-advertise-peer-urls", "http://127.0.0.1:2380", "--initial-cluster",
             "t=http://127.0.0.1:2380", "--heartbeat-interval", "10", "--election-timeout", "100"}),
        dir_ / "etcd.log", dir_ / "etcd.log");
    ASSERT_TRUE(eventually(
        [&] {
          return hosts_.sh_in('c', "curl -sf -X POST " + url +
                                       "/v3/kv/range -d {\\\"key\\\":\\\"eA==\\\"} >/dev/null") ==
                 0;
        },
        seconds(20)))
        << read_all(dir_ / "etcd.log");
  }

  // Peer 0 = alpha on host a, 1 = beta on host b.
  void start_peer(int i) {
    std::string name = i == 0 ? "alpha" : "beta";
    char host = i == 0 ? 'a' : 'b';
    relived_[i] = std::make_unique<Background>(
        hosts_.in(host, {relived_bin(), "--ha-config", dir_ / "pair.toml", "--name", name,
                         "--state-dir", dir_ / ("state-" + name)}),
        dir_ / (name + ".out"), dir_ / (name + ".err"));
  }
  std::string err(int i) const { return read_all(dir_ / (i == 0 ? "alpha.err" : "beta.err")); }
  std::string logs() const { return "\n--- alpha:\n" + err(0) + "\n--- beta:\n" + err(1); }

  // `relive ha status --json` from host c: one object per peer.
  nlohmann::json status() const {
    RunResult r = run(hosts_.in('c', {relive_bin(), "ha", "status", "--config", dir_ / "pair.toml",
                                      "--name", "alpha", "--json"}),
                      30);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_array() ? j : nlohmann::json::array();
  }
  std::string role(int i) const {
    auto s = status();
    return s.size() == 2 ? s[i].value("role", "") : "";
  }
  bool protected_by_backup(int primary) const {
    auto s = status();
    return s.size() == 2 && s[primary].value("role", "") == "primary" &&
           s[primary].value("protection", "") == "protected" &&
           s[primary].value("committed_epoch", 0) > 2;
  }
  pid_t workload_pid(int i) const {
    auto s = status();
    return s.size() == 2 ? s[i].value("workload_pid", 0) : 0;
  }

  // alpha primary, beta backup, protected.
  void start_pair(seconds boot = seconds(30)) {
    start_peer(0);
    ASSERT_TRUE(eventually([&] { return role(0) == "primary"; }, boot)) << logs();
    start_peer(1);
    ASSERT_TRUE(eventually([&] { return protected_by_backup(0); }, boot)) << logs();
    EXPECT_EQ(role(1), "backup");
  }

  // `w`: the workload's pid if known (asking for it takes a status round trip).
  void kill_host_a(pid_t w = 0) {
    if (w == 0) w = workload_pid(0);
    relived_[0]->stop();
    if (w > 0) ::kill(w, SIGKILL);
  }

  std::string prefix_ = "rha" + std::to_string(::getpid() % 100000);
  std::string netns_ = prefix_ + "w";
  NetnsHosts hosts_{prefix_, 60};
  TempDir dir_;
  // etcd fsyncs every lease grant and put: on tmpfs, so that a busy disk (CRIU images, other
  // tests) cannot stall it past a lease's TTL.
  std::string etcd_dir_ = "/dev/shm/relive-test-etcd-" + std::to_string(::getpid());
  std::unique_ptr<Background> etcd_;
  std::unique_ptr<Background> relived_[2];
};

}  // namespace relive::testing
