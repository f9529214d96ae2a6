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

#include "ha_pair_fixture.h"

namespace relive::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

class HaPair : public HaPairFixture {
 protected:
  void SetUp() override {
    for (const char* tool : {"/usr/bin/redis-server", "/usr/bin/redis-benchmark"}) {
      if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is not installed";
    }
    HaPairFixture::SetUp();
  }
  void TearDown() override {
    writer_.reset();
    HaPairFixture::TearDown();
  }
  void kill_leftovers() override {
    sh("pkill -9 -f 'redis-server \\*:" + std::to_string(kPort) + "' 2>/dev/null; true");
  }

  // Per test process: ctest runs two of these at once, and serving_count() and TearDown find
  // the workload by its port.
  const int kPort = 20000 + ::getpid() % 10000;

  std::string workload_toml() const override { return redis_workload_toml(kPort); }

  // Redis processes serving our port, whichever host they are on.
  int serving_count() const {
    RunResult r = run({"/usr/bin/pgrep", "-c", "-f", "redis-server \\*:" + std::to_string(kPort)});
    return std::atoi(r.out.c_str());
  }

  void start_writer() {
    writer_ = std::make_unique<Background>(
        hosts_.in('c', {redis_writer_bin(), "write", service(), std::to_string(kPort), "k"}),
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
    RunResult v = verify_redis_acks(kPort, dir_ / "acks.done");
    EXPECT_EQ(v.exit_code, 0) << what << ": " << v.out;
    std::vector<Ack> acks = acks_in(dir_ / "acks.done");
    std::printf("[measure] %s: %zu acknowledged writes, none lost; longest client gap %ld ms\n",
                what.c_str(), acks.size(), longest_gap_ms(acks));
  }
  std::unique_ptr<Background> writer_;
};

TEST_F(HaPair, FailoverUnderLoadLosesNoAcknowledgedWrite) {
  start_pair();
  {
    // relive ha status: frozen-time percentiles, and the epoch that took the slow path (the
    // full one when the backup joined) with the reason.
    auto s = status();
    ASSERT_EQ(s.size(), 2u);
    EXPECT_TRUE(s[0].contains("frozen_ms_p99")) << s[0].dump();
    std::string slow = s[0].value("slow_path_epochs", nlohmann::json::array()).dump();
    EXPECT_NE(slow.find("backup connected"), std::string::npos) << s[0].dump();
  }
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
// acknowledging (SIGSTOP) and falls behind until the primary has as many epochs in flight as it
// may, a client writes, the primary dies before it gives up on the backup. The client must not
// have been told OK, and the backup, taking over from its last epoch, must not have the write
// either (what the client saw and what survived agree).
TEST_F(HaPair, OutputOfAnUncommittedEpochNeverEscapes) {
  // The primary gives up on the silent backup after 16 s, far beyond the status queries (3 s
  // each while the backup is silent) and the client's 1 s below however late a loaded machine
  // starts them.
  use_failure_timeout_ms(8000);
  use_max_epochs_in_flight(4);
  start_pair();
  pid_t workload = workload_pid(0);
  ASSERT_GT(workload, 0);
  ::kill(relived_[1]->pid(), SIGSTOP);
  // Several epochs in flight, none acknowledged: the primary captures nothing more.
  ASSERT_TRUE(eventually(
      [&] {
        auto s = status();
        return s.size() == 2 && s[0].value("epochs_in_flight", 0) == 4;
      },
      seconds(12)))
      << status().dump() << logs();
  RunResult w = run(hosts_.in('c', {"/usr/bin/timeout", "1", "/usr/bin/redis-cli", "-h", service(),
                                    "-p", std::to_string(kPort), "SET", "unseen", "1"}),
                    10);
  EXPECT_EQ(w.out.find("OK"), std::string::npos) << "the client saw uncommitted output: " << w.out;
  // Before the primary gives up on the backup (16 s without an acknowledgement) and would serve
  // unprotected.
  kill_host_a(workload);
  ::kill(relived_[1]->pid(), SIGCONT);
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(60))) << logs();
  RunResult g = run(hosts_.in('c', {"/usr/bin/redis-cli", "-h", service(), "-p",
                                    std::to_string(kPort), "EXISTS", "unseen"}),
                    10);
  EXPECT_EQ(g.out, "0\n") << "the write the client never saw acknowledged survived" << logs();
}

// A write larger than the backup keeps in memory for one epoch (limits.max_epoch_bytes, 12 MiB
// here; an 8 MiB value dirties its copy in memory, redis's query and AOF buffers and 8 MiB of the
// AOF file at once): the pages past the limit wait on the backup's disk, the backup is kept, the
// client is answered once that epoch is on the backup, and the value survives a failover.
TEST_F(HaPair, AnEpochLargerThanTheLimitWaitsOnTheBackupsDisk) {
  use_max_epoch_bytes(12 << 20);
  start_pair();
  std::string value;
  for (int i = 0; value.size() < (8u << 20); ++i) value += fmt::format("{:08x}", i * 2654435761u);
  write_all_to(dir_ / "big", value);
  RunResult w =
      run(hosts_.in('c', {"/bin/sh", "-c",
                          "/usr/bin/redis-cli -h " + service() + " -p " + std::to_string(kPort) +
                              " -x SET big < " + std::string(dir_ / "big")}),
          60);
  ASSERT_EQ(w.out, "OK\n") << w.err << logs();
  EXPECT_NE(err(1).find("wait on disk"), std::string::npos) << logs();
  EXPECT_EQ(err(0).find("backup lost"), std::string::npos) << logs();
  pid_t workload = workload_pid(0);
  ASSERT_GT(workload, 0);
  kill_host_a(workload);
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(60))) << logs();
  RunResult g = run(hosts_.in('c', {"/usr/bin/redis-cli", "-h", service(), "-p",
                                    std::to_string(kPort), "STRLEN", "big"}),
                    10);
  EXPECT_EQ(g.out, std::to_string(value.size()) + "\n") << logs();
}

// An epoch that writes more to the workload directory than the backup takes
// (limits.max_epoch_bytes, 1 MiB; the 8 MiB value goes to redis's AOF file) is dropped with that
// reason, never sent to be refused; while it lasts the primary gives up on protection and serves
// unprotected, the workload running on with the write.
TEST_F(HaPair, DirectoryWritesPastTheLimitFailTheEpochAndTheWorkloadRunsOn) {
  use_max_epoch_bytes(1 << 20);
  start_pair();
  write_all_to(dir_ / "big", std::string(8u << 20, 'v'));
  RunResult w =
      run(hosts_.in('c', {"/bin/sh", "-c",
                          "/usr/bin/redis-cli -h " + service() + " -p " + std::to_string(kPort) +
                              " -x SET big < " + std::string(dir_ / "big")}),
          60);
  EXPECT_EQ(w.out, "OK\n") << "answered once the primary serves unprotected" << w.err << logs();
  EXPECT_NE(err(0).find("written to the workload directory in one epoch"), std::string::npos)
      << logs();
  EXPECT_EQ(err(1).find("directory changes exceed"), std::string::npos)
      << "an epoch the backup had to refuse was sent" << logs();
  ASSERT_TRUE(
      eventually([&] { return status()[0].value("protection", "") == "unprotected"; }, seconds(60)))
      << status().dump() << logs();
  RunResult g = run(hosts_.in('c', {"/usr/bin/redis-cli", "-h", service(), "-p",
                                    std::to_string(kPort), "STRLEN", "big"}),
                    10);
  EXPECT_EQ(g.out, std::to_string(8u << 20) + "\n") << logs();
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
  // By the backup's own clock, the primary has been silent for longer than the failure timeout
  // plus a whole lease and etcd's expiry sweep: every chance to misbehave has come and gone.
  int64_t long_silence = 300 + kLeaseTtl * 1000 + 500;
  ASSERT_TRUE(eventually(
      [&] {
        auto s = status();
        return s.size() == 2 && s[1].value("last_heard_ms_ago", int64_t{-1}) > long_silence;
      },
      seconds(60)))
      << logs();
  EXPECT_EQ(role(0), "primary");
  EXPECT_EQ(role(1), "backup");
  EXPECT_EQ(serving_count(), 1);
  // The backup suspected the primary and prepared the workload's network for a takeover that
  // the fence then refused.
  std::string prepared = netns_ + "-beta";
  EXPECT_TRUE(netns_exists(prepared)) << logs();
  // Heal: the primary re-protects with a full epoch, no failover.
  ASSERT_EQ(hosts_.sh_in('a', "iptables -D INPUT -s " + b + " -j DROP && iptables -D OUTPUT -d " +
                                  b + " -j DROP"),
            0);
  ASSERT_TRUE(eventually([&] { return protected_by_backup(0); }, seconds(30))) << logs();
  // A false alarm: what was prepared on the backup goes once the primary is heard again.
  EXPECT_TRUE(eventually([&] { return !netns_exists(prepared); }, seconds(30)))
      << "the network prepared for the takeover is left behind" << logs();
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

// The fence hands over long before etcd would expire a dead primary's lease (30 s here): the
// backup takes the key once it stood still for fence_ms, and nothing acknowledged is lost.
class HaPairLongLease : public HaPair {
 protected:
  std::string config() const override {
    std::string c = HaPair::config();
    size_t at = c.find("lease_ttl_s = 2\n");
    EXPECT_NE(at, std::string::npos);
    return c.replace(at, 16, "lease_ttl_s = 30\nfence_ms = 1000\n");
  }
};

TEST_F(HaPairLongLease, ABackupTakesTheKeyOfASilentPrimaryBeforeItsLeaseExpires) {
  start_pair();
  start_writer();
  wait_acks(20);
  size_t before = acked();
  kill_host_a();
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(60))) << logs();
  EXPECT_NE(err(1).find("fence key stood still"), std::string::npos)
      << "the backup did not take over by the fence" << logs();
  wait_acks(before + 20);
  verify_no_acked_write_lost("takeover by the fence");
  EXPECT_EQ(serving_count(), 1) << "exactly one redis serves after the failover";
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
