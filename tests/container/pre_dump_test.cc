// relive container checkpoint --pre-dump N (container/pre_dump.h): the rounds run while the tree
// does, then CRIU's full dump; the archive restores as one made without them (a process tree,
// from the library and the command line, and a runc container), and the numbers say what
// happened (every page in round 0, and CRIU still writing every page).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ct_harness.h"
#include "oci_bundle.h"

namespace relive::ct {
namespace {

class PreDump : public ::testing::Test {
 protected:
  void SetUp() override { RELIVE_REQUIRE_CRIU(); }
};

constexpr uint64_t k64MiBPages = 64ull << 20 >> 12;

TEST_F(PreDump, TwoRoundsThenTheArchiveRestoresIntact) {
  testing::TempDir dir;
  std::string result = dir / "result", archive = dir / "mem.rlvc";
  Subject s("ct_memory", result, {"64"});
  ASSERT_TRUE(s.ready()) << s.result();
  ContainerCheckpointOptions co = checkpoint_options(s.pid(), archive);
  co.pre_dump_rounds = 2;
  auto ck = checkpoint_container(co);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  ASSERT_EQ(ck->pre_dump_pages.size(), 2u);
  EXPECT_GE(ck->pre_dump_pages[0], k64MiBPages) << "round 0 copies the whole buffer";
  // The subject waits for SIGUSR1 without touching its buffer: later rounds are small.
  EXPECT_LT(ck->pre_dump_pages[1], k64MiBPages / 16);
  EXPECT_GE(ck->pages_written, k64MiBPages) << "CRIU's dump still writes every page";
  s.reap();
  std::remove(result.c_str());

  auto r = restore_container(restore_options(archive));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  RestoredTree tree(*r);
  ASSERT_EQ(::kill(r->root_pid, SIGUSR1), 0);
  EXPECT_TRUE(wait_until([&] { return testing::read_all(result) == "OK\n"; }, milliseconds(20000)))
      << testing::read_all(result);
  std::printf(
      "[measure] ct_memory 64 MiB, --pre-dump 2: rounds %llu, %llu pages in %.0f ms; "
      "%llu written after; frozen %.2f ms, %llu pages written by CRIU\n",
      static_cast<unsigned long long>(ck->pre_dump_pages[0]),
      static_cast<unsigned long long>(ck->pre_dump_pages[1]), ck->pre_dump_ms,
      static_cast<unsigned long long>(ck->pre_dump_final_dirty), ck->frozen_ms,
      static_cast<unsigned long long>(ck->pages_written));
}

// The flag on the command line, on a tree of two processes (both tracked), with --leave-running:
// the tree runs on untouched and the archive restores.
TEST_F(PreDump, CommandLineTreeLeftRunning) {
  testing::TempDir dir;
  std::string result = dir / "result", archive = dir / "pipe.rlvc";
  Subject s("ct_pipe", result);
  ASSERT_TRUE(s.ready());
  auto ck =
      testing::run({testing::relive_bin(), "container", "checkpoint", "--pid",
                    std::to_string(s.pid()), "-o", archive, "--pre-dump", "2", "--leave-running"},
                   120);
  ASSERT_EQ(ck.exit_code, 0) << ck.err;
  EXPECT_NE(ck.out.find("pre-dump: 2 round(s)"), std::string::npos) << ck.out;
  EXPECT_NE(process_state(s.pid()), 'T') << "the source runs on";
  ASSERT_EQ(::kill(s.pid(), SIGUSR1), 0);
  EXPECT_TRUE(wait_until([&] { return s.result() == "OK\n"; }, milliseconds(20000)))
      << "the source after the pre-dump: " << s.result();
  ::kill(-s.pid(), SIGKILL);
  s.reap();
  std::remove(result.c_str());

  auto r = restore_container(restore_options(archive));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  RestoredTree tree(*r);
  ASSERT_EQ(::kill(r->root_pid, SIGUSR1), 0);
  EXPECT_TRUE(wait_until([&] { return testing::read_all(result) == "OK\n"; }, milliseconds(20000)))
      << testing::read_all(result);
}

// A runc container (a shell counting, and its short-lived `sleep`s, which may exit between
// being tracked and being read): the rounds run before `runc pause`, and the archive restores
// as a container that counts on.
TEST_F(PreDump, RuncContainerCountsOnAfterTheRestore) {
  if (!have_runc()) GTEST_SKIP() << "runc is not installed";
  testing::TempDir dir;
  const std::vector<std::string> args = {
      "/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /state/counter; sleep 0.05; done"};
  OciBundle src(dir / "src", {args}), dst(dir / "dst", {{}, {}, "", /*write_config=*/false});
  ASSERT_EQ(src.error(), "");
  ASSERT_EQ(dst.error(), "");
  RuncName a("relive-predump-" + std::to_string(::getpid()));
  RuncName b("relive-predump-b-" + std::to_string(::getpid()));
  auto count = [](const OciBundle& o) { return std::atol(o.file("/state/counter").c_str()); };
  ASSERT_EQ(a.start(src), "");
  ASSERT_TRUE(wait_until([&] { return count(src) >= 3; }, milliseconds(10000))) << a.status();
  ContainerCheckpointOptions co = checkpoint_options(0, dir / "c.rlvc");
  co.name = a.name();
  co.pre_dump_rounds = 2;
  auto ck = checkpoint_container(co);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  ASSERT_EQ(ck->pre_dump_pages.size(), 2u);
  EXPECT_GT(ck->pre_dump_pages[0], 0u);
  long at_dump = count(src);

  ContainerRestoreOptions ro = restore_options(dir / "c.rlvc");
  ro.name = b.name();
  ro.bundle = dst.path();
  auto r = restore_container(ro);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(wait_until([&] { return count(dst) >= at_dump + 3; }, milliseconds(10000)))
      << "the counter did not carry on from " << at_dump << ": " << count(dst);
}

}  // namespace
}  // namespace relive::ct
