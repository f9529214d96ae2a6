// Fast HA epochs end to end: a workload whose kernel state keeps changing (files opened and
// closed, a thread started and joined, memory mapped and unmapped, its signal mask and a log
// file's offset changed, connections accepted and closed) is protected by the relived pair. Most
// epochs must be fast ones (pages and registers only), the epochs after a change must be CRIU
// dumps that say why, and after a kill -9 of the primary the backup's copy must run on with
// every acknowledged addition and with what it knows of itself matching what the kernel says.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "ha_pair_fixture.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

class HaFastEpoch : public HaPairFixture {
 protected:
  const int kPort = 21000 + ::getpid() % 9000;
  static std::string subject() { return test_bin_dir() + "/subjects/ha_stateful"; }

  std::string workload_toml() const override {
    return fmt::format(R"([workload]
command = ["{bin}", "serve", "{port}"]
directory = "{dir}"
service_address = "{svc}/24"
netns = "{ns}"
)",
                       fmt::arg("bin", subject()), fmt::arg("port", kPort),
                       fmt::arg("dir", std::string(dir_ / "w")), fmt::arg("svc", service()),
                       fmt::arg("ns", netns_));
  }
  void kill_leftovers() override {
    sh("pkill -9 -f 'ha_stateful serve " + std::to_string(kPort) + "' 2>/dev/null; true");
  }

  // The workload's answer to `request`, from host c; empty when there is none.
  std::string ask(const std::string& request) const {
    RunResult r =
        run(hosts_.in('c', {subject(), "ask", service(), std::to_string(kPort), request}), 30);
    return r.exit_code == 0 ? r.out : "";
  }
  // The primary's recent epochs: how many were fast, and the reasons the others were not.
  std::pair<uint64_t, std::string> epochs_seen() const {
    auto s = status();
    if (s.size() != 2) return {0, ""};
    return {s[0].value("fast_epochs", 0ull),
            s[0].value("slow_path_epochs", nlohmann::json::array()).dump()};
  }
};

TEST_F(HaFastEpoch, ChangingKernelStateFailsOverWithEveryAcknowledgedAddition) {
  start_pair();
  // Additions acknowledged while the workload cycles through its changes (a cycle is 1.2 s).
  uint64_t last_ack = 0;
  for (int i = 0; i < 60; ++i) {
    std::string a = ask("add 1");
    ASSERT_EQ(a.rfind("ok ", 0), 0u) << a << logs();
    last_ack = std::stoull(a.substr(3));
  }
  std::string before = ask("check");
  ASSERT_NE(before.find(" ok"), std::string::npos) << before << logs();
  ASSERT_TRUE(eventually([&] { return epochs_seen().first >= 20; }, seconds(60)))
      << "fast epochs: " << epochs_seen().first << logs();
  // Each kind of change sends the next epoch down the CRIU path, and says so (the status lists
  // the last few such epochs: gather them over a few cycles).
  const std::vector<std::string> whys = {"memory map changed", "thread",
                                         "memory mapping flags changed"};
  std::string slow;
  auto all_seen = [&] {
    slow += epochs_seen().second;
    return std::all_of(whys.begin(), whys.end(),
                       [&](const std::string& w) { return slow.find(w) != std::string::npos; });
  };
  EXPECT_TRUE(eventually(all_seen, seconds(60))) << "not all of the reasons are among " << slow;
  uint64_t fast = epochs_seen().first;
  std::printf("[measure] fast epochs %llu; recent CRIU epochs: %s\n",
              static_cast<unsigned long long>(fast), slow.c_str());

  // Only the log file's offset moves from now on: the epochs stay fast, and the backup's copy is
  // the last CRIU dump patched with them.
  ASSERT_EQ(ask("quiet"), "ok\n") << logs();
  uint64_t quiet_from = epochs_seen().first;
  ASSERT_TRUE(eventually([&] { return epochs_seen().first >= quiet_from + 15; }, seconds(60)))
      << logs();
  {
    auto s = status();
    ASSERT_EQ(s.size(), 2u);
    std::printf("[measure] fast epochs: frozen p50 %.2f ms, p99 %.2f ms, %.1f epochs/s\n",
                s[0].value("frozen_ms_p50", -1.0), s[0].value("frozen_ms_p99", -1.0),
                s[0].value("epochs_per_s", -1.0));
  }
  for (int i = 0; i < 10; ++i) {
    std::string a = ask("add 1");
    ASSERT_EQ(a.rfind("ok ", 0), 0u) << a << logs();
    last_ack = std::stoull(a.substr(3));
  }
  kill_host_a();
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(30))) << logs();
  std::string after;
  ASSERT_TRUE(eventually([&] { return !(after = ask("check")).empty(); }, seconds(30))) << logs();
  ASSERT_EQ(after.rfind("total ", 0), 0u) << after << logs();
  EXPECT_GE(std::stoull(after.substr(6)), last_ack) << after;
  EXPECT_NE(err(1).find("set to the last fast epoch"), std::string::npos)
      << "the takeover did not restore a fast epoch" << logs();
  // It runs on: computing, its worker thread counting, its state checks passing.
  std::string later;
  ASSERT_TRUE(eventually(
      [&] {
        later = ask("check");
        return later != after && later.find(" ok") != std::string::npos;
      },
      seconds(30)))
      << later << logs();
  auto worker = [](const std::string& answer) {
    size_t at = answer.find("worker ");
    return at == std::string::npos ? 0ull : std::stoull(answer.substr(at + 7));
  };
  EXPECT_GT(worker(later), worker(after)) << "the worker thread stopped: " << later;
  std::string a = ask("add 1");
  EXPECT_EQ(a.rfind("ok ", 0), 0u) << a;
}

// redis-server with a client writing: its epochs are fast ones that carry the connection's TCP
// state (sequence numbers, queues, windows) in patched tcp-stream images, and a takeover from
// such an epoch keeps every acknowledged write.
class HaFastEpochRedis : public HaPairFixture {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/redis-server", X_OK) != 0) GTEST_SKIP() << "redis-server is missing";
    HaPairFixture::SetUp();
  }
  const int kPort = 22000 + ::getpid() % 9000;
  std::string workload_toml() const override { return redis_workload_toml(kPort); }
  void kill_leftovers() override {
    sh("pkill -9 -f 'redis-server \\*:" + std::to_string(kPort) + "' 2>/dev/null; true");
  }
};

TEST_F(HaFastEpochRedis, ConnectionsCarriedByFastEpochsSurviveATakeover) {
  start_pair();
  auto writer = std::make_unique<Background>(
      hosts_.in('c', {redis_writer_bin(), "write", service(), std::to_string(kPort), "k"}),
      dir_ / "acks", dir_ / "writer.err");
  ASSERT_TRUE(eventually([&] { return acks_in(dir_ / "acks").size() >= 50; }, seconds(60)))
      << logs();
  // With one steady connection nothing but its TCP state moves: the epochs are fast ones.
  auto fast = [&] {
    auto s = status();
    return s.size() == 2 ? s[0].value("fast_epochs", 0ull) : 0ull;
  };
  uint64_t from = fast();
  ASSERT_TRUE(eventually([&] { return fast() >= from + 20; }, seconds(60))) << logs();
  size_t before = acks_in(dir_ / "acks").size();
  kill_host_a();
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(30))) << logs();
  // The writer carries on (reconnecting if its connection fell silent for a second).
  ASSERT_TRUE(eventually([&] { return acks_in(dir_ / "acks").size() >= before + 50; }, seconds(60)))
      << read_all(dir_ / "writer.err") << logs();
  writer.reset();
  write_all_to(dir_ / "acks.done", read_all(dir_ / "acks"));
  RunResult v = verify_redis_acks(kPort, dir_ / "acks.done");
  EXPECT_EQ(v.exit_code, 0) << v.out;
  EXPECT_NE(err(1).find("set to the last fast epoch"), std::string::npos)
      << "the takeover did not restore a fast epoch" << logs();
  std::printf(
      "[measure] takeover from a fast epoch: %zu acknowledged writes, none lost; longest "
      "client gap %ld ms\n",
      acks_in(dir_ / "acks.done").size(), longest_gap_ms(acks_in(dir_ / "acks.done")));
}

}  // namespace
}  // namespace relive::testing
