// Checkpoints that fail must cost nothing: the source keeps running (not killed, not left
// stopped) and no archive, whole or partial, is left behind. And --leave-running must leave it
// running, while its archive still restores (beside it, in another PID namespace).
#include <gtest/gtest.h>
#include <sys/ptrace.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "ct_harness.h"

namespace relive::ct {
namespace {

class CheckpointFailure : public ::testing::Test {
 protected:
  void SetUp() override { RELIVE_REQUIRE_CRIU(); }

  // The subject must still be running (not stopped) and answer OK to SIGUSR1.
  static void expect_alive_and_well(Subject& s) {
    EXPECT_NE(process_state(s.pid()), 'T') << "left stopped";
    ASSERT_EQ(::kill(s.pid(), SIGUSR1), 0) << "the source is gone";
    EXPECT_TRUE(s.wait_for("OK")) << s.result();
  }
  static void expect_no_archive(const testing::TempDir& dir) {
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      std::string name = e.path().filename().string();
      EXPECT_TRUE(name == "result" || name == "result.tmp") << "left behind: " << name;
    }
  }
};

TEST_F(CheckpointFailure, NonexistentPidWritesNothing) {
  testing::TempDir dir;
  auto r = checkpoint_container(checkpoint_options(999999999, dir / "a.rlvc"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound) << r.status().to_string();
  expect_no_archive(dir);
}

TEST_F(CheckpointFailure, CriuErrorLeavesTheSourceRunning) {
  testing::TempDir dir;
  Subject s("ct_memory", dir / "result", {"4"});
  ASSERT_TRUE(s.ready());
  // A process that is already ptrace-seized (here by the test) cannot be seized by CRIU.
  ASSERT_EQ(::ptrace(PTRACE_SEIZE, s.pid(), nullptr, nullptr), 0) << std::strerror(errno);
  testing::TempDir work;  // CRIU's log of the failed dump stays there
  ContainerCheckpointOptions o = checkpoint_options(s.pid(), dir / "a.rlvc");
  o.work_dir = work.path();
  auto r = checkpoint_container(o);
  // PTRACE_DETACH needs a ptrace-stop.
  ASSERT_EQ(::ptrace(PTRACE_INTERRUPT, s.pid(), nullptr, nullptr), 0);
  ASSERT_EQ(::waitpid(s.pid(), nullptr, 0), s.pid());
  ASSERT_EQ(::ptrace(PTRACE_DETACH, s.pid(), nullptr, nullptr), 0) << std::strerror(errno);
  ASSERT_FALSE(r.ok());
  std::printf("expected failure: %s\n", r.status().to_string().c_str());
  expect_no_archive(dir);
  expect_alive_and_well(s);
}

TEST_F(CheckpointFailure, FailedPackingResumesTheDumpedTree) {
  testing::TempDir dir;
  Subject s("ct_memory", dir / "result", {"4"});
  ASSERT_TRUE(s.ready());
  // A directory where the archive should go: CRIU's dump succeeds, the final rename fails.
  std::filesystem::create_directory(dir / "a.rlvc");
  auto r = checkpoint_container(checkpoint_options(s.pid(), dir / "a.rlvc"));
  ASSERT_FALSE(r.ok());
  std::printf("expected failure: %s\n", r.status().to_string().c_str());
  EXPECT_FALSE(exists(dir / "a.rlvc.partial"));
  EXPECT_TRUE(std::filesystem::is_empty(dir / "a.rlvc"));
  expect_alive_and_well(s);
}

TEST_F(CheckpointFailure, LeaveRunningKeepsTheSourceAndTheArchiveRestoresBesideIt) {
  testing::TempDir dir;
  std::string result = dir / "result";
  Subject s("ct_memory", result, {"8"});
  ASSERT_TRUE(s.ready());
  ContainerCheckpointOptions o = checkpoint_options(s.pid(), dir / "a.rlvc");
  o.leave_running = true;
  auto ck = checkpoint_container(o);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  expect_alive_and_well(s);
  // The source's PID is still taken: only a fresh PID namespace lets the copy have it too.
  std::remove(result.c_str());
  auto r = restore_container(restore_options(dir / "a.rlvc"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  RestoredTree tree(*r);
  EXPECT_EQ(r->ns_root_pid, s.pid());
  EXPECT_NE(r->root_pid, s.pid());
  ASSERT_EQ(::kill(r->root_pid, SIGUSR1), 0);
  EXPECT_TRUE(wait_until([&] { return testing::read_all(result) == "OK\n"; }, milliseconds(20000)))
      << testing::read_all(result);
}

}  // namespace
}  // namespace relive::ct
