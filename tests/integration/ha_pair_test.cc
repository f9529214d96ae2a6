// The relived HA pair end to end: redis-server protected by relived on host a (alpha), backup on
// host b (beta), a real etcd on host c holding the fence, clients (a verifying writer that
// records every acknowledged write, redis-benchmark for load) on host c, all network
// namespaces joined by a bridge. Failover, the Remus output-commit invariant, partitions,
// re-protection and planned switchover, and unknown peers.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "netns_hosts.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

std::string relived_bin() { return relive_bin() + "d"; }
std::string writer_bin() { return test_bin_dir() + "/subjects/redis_writer"; }

struct Ack {
  long key;
  long ms;
};

std::vector<Ack> acks_in(const std::string& path) {
  std::vector<Ack> out;
  std::istringstream in(read_all(path));
  Ack a{};
  while (in >> a.key >> a.ms) out.push_back(a);
  return out;
}

// The longest time between two consecutive acknowledged writes: the outage a client saw.
long longest_gap_ms(const std::vector<Ack>& acks) {
  long gap = 0;
  for (size_t i = 1; i < acks.size(); ++i) gap = std::max(gap, acks[i].ms - acks[i - 1].ms);
  return gap;
}

class HaPair : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, CRIU, iptables)";
    for (const char* tool :
         {"/usr/bin/etcd", "/usr/bin/redis-server", "/usr/bin/redis-benchmark"}) {
      if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is not installed";
    }
    ASSERT_TRUE(hosts_.ok()) << "could not create the test hosts";
    ASSERT_EQ(run({relive_bin(), "keys", "init", dir_ / "keys", "--hosts", "alpha,beta,mallory"})
                  .exit_code,
              0);
    start_etcd();
    write_all_to(dir_ / "pair.toml", config());
  }
  void TearDown() override {
    writer_.reset();
    for (auto& r : relived_) r.reset();
    // Whatever workload is left (relived leaves it running when it is killed).
    sh("pkill -9 -f 'redis-server \\*:" + std::to_string(kPort) + "' 2>/dev/null; true");
    etcd_.reset();
    sh("rm -rf " + etcd_dir_);
    sh("for n in " + netns_ + "-alpha " + netns_ +
       "-beta; do ip netns del $n 2>/dev/null; done; true");
  }

  // Per test process: ctest runs two of these at once, and serving_count() and TearDown find
  // the workload by its port.
  const int kPort = 20000 + ::getpid() % 10000;
  // 2 s, not etcd's 1 s minimum: the primary renews every third of the TTL, and on a loaded
  // 2-core machine two slow renewals in a row would fence a healthy primary (bench/ha.py
  // measures with 1 s on a quiet machine).
  static constexpr int kLeaseTtl = 2;
  std::string service() const { return "198.18.60.10"; }

  std::string config() const {
    return fmt::format(R"(tls_dir = "{keys}"
epoch_ms = 50
heartbeat_ms = 50
failure_timeout_ms = 300
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
[workload]
command = ["/usr/bin/redis-server", "--port", "{port}", "--save", "", "--appendonly", "yes",
           "--protected-mode", "no"]
directory = "{dir}"
service_address = "{svc}/24"
netns = "{ns}"
)",
                       fmt::arg("keys", std::string(dir_ / "keys")),
                       fmt::arg("a", hosts_.address('a')), fmt::arg("b", hosts_.address('b')),
                       fmt::arg("c", hosts_.address('c')), fmt::arg("ns", netns_),
                       fmt::arg("port", kPort), fmt::arg("dir", std::string(dir_ / "w")),
                       fmt::arg("svc", service()), fmt::arg("ttl", kLeaseTtl));
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
  // Redis processes serving our port, whichever host they are on.
  int serving_count() const {
    RunResult r = run({"/usr/bin/pgrep", "-c", "-f", "redis-server \\*:" + std::to_string(kPort)});
    return std::atoi(r.out.c_str());
  }

  // alpha primary, beta backup, protected.
  void start_pair() {
    start_peer(0);
    ASSERT_TRUE(eventually([&] { return role(0) == "primary"; }, seconds(30))) << logs();
    start_peer(1);
    ASSERT_TRUE(eventually([&] { return protected_by_backup(0); }, seconds(30))) << logs();
    EXPECT_EQ(role(1), "backup");
  }

  void start_writer() {
    writer_ = std::make_unique<Background>(
        hosts_.in('c', {writer_bin(), "write", service(), std::to_string(kPort), "k"}),
        dir_ / "acks", dir_ / "writer.err");
  }
  size_t acked() const { return acks_in(dir_ / "acks").size(); }
  void wait_acks(size_t n, seconds limit = seconds(60)) {
    ASSERT_TRUE(eventually([&] { return acked() >= n; }, limit))
        << "only " << acked() << " writes acknowledged" << logs();
  }
  // Stops the writer and checks every acknowledged write against the service.
  void verify_no_acked_write_lost(const std::string& what) {
    writer_.reset();
    write_all_to(dir_ / "acks.done", read_all(dir_ / "acks"));
    RunResult v =
        run(hosts_.in('c', {"/bin/sh", "-c",
                            writer_bin() + " verify " + service() + " " + std::to_string(kPort) +
                                " k < " + std::string(dir_ / "acks.done")}),
            120);
    EXPECT_EQ(v.exit_code, 0) << what << ": " << v.out;
    std::vector<Ack> acks = acks_in(dir_ / "acks.done");
    std::printf("[measure] %s: %zu acknowledged writes, none lost; longest client gap %ld ms\n",
                what.c_str(), acks.size(), longest_gap_ms(acks));
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
  std::unique_ptr<Background> writer_;
};

TEST_F(HaPair, FailoverUnderLoadLosesNoAcknowledgedWrite) {
  start_pair();
  start_writer();
  Background bench(
      hosts_.in('c', {"/usr/bin/redis-benchmark", "-h", service(), "-p", std::to_string(kPort),
                      "-t", "set,incr,lpush", "-n", "100000000", "-c", "4", "-P", "4", "-q"}),
      "/dev/null");
  wait_acks(40);
  size_t before = acked();
  kill_host_a();  // kill -9 of relived and the workload: everything on the primary host
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(30))) << logs();
  wait_acks(before + 40);
  bench.stop();
  verify_no_acked_write_lost("failover under load");
  EXPECT_EQ(serving_count(), 1) << "exactly one redis serves after the failover";
}

// Output of an epoch the backup never acknowledged must never reach a client: the backup stops
// acknowledging (SIGSTOP), a client writes, the primary dies before it gives up on the backup.
// The client must not have been told OK, and the backup, taking over from its last epoch, must
// not have the write either (what the client saw and what survived agree).
TEST_F(HaPair, OutputOfAnUncommittedEpochNeverEscapes) {
  start_pair();
  pid_t workload = workload_pid(0);
  ASSERT_GT(workload, 0);
  ::kill(relived_[1]->pid(), SIGSTOP);
  RunResult w = run(hosts_.in('c', {"/usr/bin/timeout", "1", "/usr/bin/redis-cli", "-h", service(),
                                    "-p", std::to_string(kPort), "SET", "unseen", "1"}),
                    10);
  EXPECT_EQ(w.out.find("OK"), std::string::npos) << "the client saw uncommitted output: " << w.out;
  // Before the primary gives up on the backup (2 s without an acknowledgement) and would serve
  // unprotected.
  kill_host_a(workload);
  ::kill(relived_[1]->pid(), SIGCONT);
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(30))) << logs();
  RunResult g = run(hosts_.in('c', {"/usr/bin/redis-cli", "-h", service(), "-p",
                                    std::to_string(kPort), "EXISTS", "unseen"}),
                    10);
  EXPECT_EQ(g.out, "0\n") << "the write the client never saw acknowledged survived" << logs();
}

TEST_F(HaPair, PartitionLeavesExactlyOneSideServing) {
  start_pair();
  start_writer();
  wait_acks(20);
  // Cut the replication link only: both still reach etcd. The primary keeps the lease and
  // serves (unprotected); the backup cannot take the lease and stays out.
  std::string b = hosts_.address('b');
  ASSERT_EQ(hosts_.sh_in('a', "iptables -I INPUT -s " + b + " -j DROP && iptables -I OUTPUT -d " +
                                  b + " -j DROP"),
            0);
  size_t cut_at = acked();
  ASSERT_TRUE(eventually(
      [&] {
        auto s = status();
        return s.size() == 2 && s[0].value("protection", "") == "unprotected";
      },
      seconds(30)))
      << logs();
  wait_acks(cut_at + 30);
  std::this_thread::sleep_for(seconds(2));  // > lease TTL + failure timeout: time to misbehave
  EXPECT_EQ(role(0), "primary");
  EXPECT_EQ(role(1), "backup");
  EXPECT_EQ(serving_count(), 1);
  // Heal: the primary re-protects with a full epoch, no failover.
  ASSERT_EQ(hosts_.sh_in('a', "iptables -D INPUT -s " + b + " -j DROP && iptables -D OUTPUT -d " +
                                  b + " -j DROP"),
            0);
  ASSERT_TRUE(eventually([&] { return protected_by_backup(0); }, seconds(30))) << logs();
  // Now isolate the primary's host entirely: it cannot renew the lease, so it fences itself
  // (stops its workload) before the lease can expire in etcd; the backup takes over.
  ASSERT_EQ(hosts_.sh_in('a', "ip link set " + hosts_.device('a') + " down"), 0);
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(30))) << logs();
  EXPECT_TRUE(eventually([&] { return serving_count() == 1; }, seconds(10)))
      << "both sides serve after the isolation" << logs();
  EXPECT_NE(err(0).find("fenc"), std::string::npos) << "the isolated primary did not fence";
  size_t after = acked();
  wait_acks(after + 20);
  verify_no_acked_write_lost("partition then isolation");
}

TEST_F(HaPair, ReprotectionAfterFailoverThenPlannedSwitchover) {
  start_pair();
  start_writer();
  wait_acks(20);
  kill_host_a();
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(30))) << logs();
  size_t after_failover = acked();
  wait_acks(after_failover + 20);
  // alpha comes back: the survivor re-protects to it (full epoch, then epochs again).
  start_peer(0);
  ASSERT_TRUE(eventually([&] { return protected_by_backup(1); }, seconds(30))) << logs();
  EXPECT_EQ(role(0), "backup");
  // Planned switchover back to alpha, under the writer's load.
  RunResult sw = run(hosts_.in('c', {relive_bin(), "ha", "switchover", "--config",
                                     dir_ / "pair.toml", "--name", "alpha"}),
                     120);
  ASSERT_EQ(sw.exit_code, 0) << sw.err << logs();
  ASSERT_TRUE(eventually([&] { return role(0) == "primary"; }, seconds(30))) << logs();
  ASSERT_TRUE(eventually([&] { return protected_by_backup(0); }, seconds(30))) << logs();
  size_t after_switch = acked();
  wait_acks(after_switch + 20);
  verify_no_acked_write_lost("failover, re-protection, switchover");
  EXPECT_EQ(serving_count(), 1);
}

// A primary whose backup never came serves unprotected: output passes at once, and so does input.
TEST_F(HaPair, PrimaryWithoutABackupServesUnprotected) {
  start_peer(0);
  ASSERT_TRUE(eventually([&] { return role(0) == "primary"; }, seconds(30))) << logs();
  RunResult r = run(hosts_.in('c', {"/usr/bin/timeout", "10", "/usr/bin/redis-cli", "-h", service(),
                                    "-p", std::to_string(kPort), "PING"}),
                    20);
  EXPECT_EQ(r.out, "PONG\n") << r.err << logs();
  auto s = status();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].value("protection", ""), "unprotected");
  EXPECT_EQ(s[1].value("role", ""), "unreachable");
}

TEST_F(HaPair, UnknownPeerIsRefusedAndNothingIsApplied) {
  start_pair();
  auto before = status();
  // mallory holds a certificate from the pair's CA but is not in the pair.
  RunResult r = run(hosts_.in('c', {relive_bin(), "ha", "status", "--config", dir_ / "pair.toml",
                                    "--name", "mallory", "--json"}),
                    30);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array() && j.size() == 2) << r.out << r.err;
  for (const auto& peer : j) {
    EXPECT_EQ(peer.value("role", ""), "unreachable");
    EXPECT_NE(peer.value("error", "").find("unknown peer"), std::string::npos) << peer.dump();
  }
  EXPECT_TRUE(protected_by_backup(0)) << "the pair was disturbed";
}

TEST_F(HaPair, BadConfigStopsRelivedWithTheKeyName) {
  std::string c = config();
  c.replace(c.find("epoch_ms = 50"), 13, "epoch_ms = 0");
  write_all_to(dir_ / "bad.toml", c);
  RunResult r = run({relived_bin(), "--ha-config", dir_ / "bad.toml", "--name", "alpha",
                     "--state-dir", dir_ / "state-bad"},
                    30);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("epoch_ms"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace relive::testing
