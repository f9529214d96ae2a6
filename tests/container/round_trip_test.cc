// Checkpoint -> archive -> restore of zdtm-style subjects with the real CRIU. Each subject
// checks its own state after the restore and reports OK or FAIL <reason> (ct_common.h).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "ct_harness.h"

namespace relive::ct {
namespace {

struct Case {
  std::string subject;
  std::vector<std::string> args;
  bool tcp = false;
};

// Runs one subject through checkpoint and restore and returns its verdict after the restore.
void round_trip(const Case& c) {
  testing::TempDir dir;
  std::string result = dir / "result", archive = dir / "tree.rlvc";
  std::vector<std::string> args = c.args;
  for (auto& a : args) {
    if (a == "$DIR") a = dir.path();
  }
  Subject s(c.subject, result, args);
  ASSERT_TRUE(s.ready()) << c.subject << ": " << s.result();
  ContainerCheckpointOptions co = checkpoint_options(s.pid(), archive);
  co.tcp_established = c.tcp;
  auto ck = checkpoint_container(co);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  int ws = s.reap();
  EXPECT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) << "dump must end the source: " << ws;
  ASSERT_TRUE(exists(archive));
  std::remove(result.c_str());

  auto r = restore_container(restore_options(archive));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  RestoredTree tree(*r);
  EXPECT_NE(r->root_pid, r->ns_root_pid) << "restored in its own PID namespace";
  ASSERT_EQ(::kill(r->root_pid, SIGUSR1), 0);
  ASSERT_TRUE(
      wait_until([&] { return testing::read_all(result).size() >= 2; }, milliseconds(20000)))
      << c.subject << " never reported after the restore";
  EXPECT_EQ(testing::read_all(result), "OK\n") << c.subject;
  std::printf(
      "[measure] %s: %zu process(es), frozen %.2f ms, %llu pages, images %llu B, archive %llu B, "
      "dump %.0f ms, pack %.0f ms | verify %.0f ms, unpack %.0f ms, restore %.0f ms\n",
      c.subject.c_str(), ck->processes, ck->frozen_ms,
      static_cast<unsigned long long>(ck->pages_written),
      static_cast<unsigned long long>(ck->images_bytes),
      static_cast<unsigned long long>(ck->archive_bytes), ck->dump_ms, ck->pack_ms, r->verify_ms,
      r->unpack_ms, r->restore_ms);
}

class RoundTrip : public ::testing::Test {
 protected:
  void SetUp() override { RELIVE_REQUIRE_CRIU(); }
};

TEST_F(RoundTrip, MemoryPattern64MiB) { round_trip({"ct_memory", {"64"}}); }
TEST_F(RoundTrip, OpenAndDeletedFiles) { round_trip({"ct_files", {"$DIR"}}); }
TEST_F(RoundTrip, PipeBetweenTwoProcesses) { round_trip({"ct_pipe", {}}); }
TEST_F(RoundTrip, UnixSocketPairs) { round_trip({"ct_unix", {}}); }
TEST_F(RoundTrip, TimersKeepFiring) { round_trip({"ct_timers", {}}); }
TEST_F(RoundTrip, ThreadsKeepRunning) { round_trip({"ct_threads", {}}); }
TEST_F(RoundTrip, ProcessTreeKeepsItsShape) { round_trip({"ct_tree", {}}); }
TEST_F(RoundTrip, EstablishedTcpConnection) { round_trip({"ct_tcp", {}, /*tcp=*/true}); }

}  // namespace
}  // namespace relive::ct
