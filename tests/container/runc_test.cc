// relive container checkpoint/restore of real runc containers (Debian's runc, CRIU 4.1.1),
// from bundles built from local files (oci_bundle.h): state continues under another name and
// in another bundle, --leave-running, failures that leave the source running, an established
// TCP connection in a named network namespace.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/file_time.h"
#include "ct_harness.h"
#include "oci_bundle.h"

namespace relive::ct {
namespace {

// A shell that keeps a counter in memory (i) and writes it to its rootfs ten times a second,
// after leaving a greeting there.
const std::vector<std::string> kCounterArgs = {
    "/bin/sh", "-c",
    "echo hello from $(hostname) > /state/greeting; i=0; "
    "while :; do i=$((i+1)); echo $i > /state/counter; sleep 0.1; done"};

long counter(const OciBundle& b) {
  std::string s = b.file("/state/counter");
  return s.empty() ? -1 : std::atol(s.c_str());
}

class RuncContainer : public ::testing::Test {
 protected:
  void SetUp() override {
    RELIVE_REQUIRE_CRIU();
    if (!have_runc()) GTEST_SKIP() << "runc is not installed";
  }
  // Unique per test process: tests may run in parallel.
  std::string unique(const std::string& base) const {
    return "relive-" + base + "-" + std::to_string(::getpid());
  }
  // A running counter container in `dir`, counting for a moment already.
  void start_counter(const OciBundle& b, const RuncName& n) {
    ASSERT_EQ(b.error(), "");
    ASSERT_EQ(n.start(b), "");
    ASSERT_TRUE(wait_until([&] { return counter(b) >= 3; }, milliseconds(10000)))
        << "the container never counted: " << n.status();
  }
  testing::TempDir dir_;
};

TEST_F(RuncContainer, RestoredUnderAnotherNameInAFreshBundleCarriesOn) {
  OciBundle src(dir_ / "src", {kCounterArgs});
  RuncName a(unique("count")), b(unique("count-b"));
  // The base rootfs was copied just now; only once it is older than the archive's cut-off
  // margin (a tick's worth) can "unchanged files stay out" below hold.
  ASSERT_TRUE(wait_until(
      [&] {
        struct stat st {};
        return ::stat((src.rootfs() + "/bin/busybox").c_str(), &st) == 0 &&
               realtime_now_ns() - ctime_ns(st) > 2 * kTickMargin.count();
      },
      milliseconds(10000)));
  start_counter(src, a);
  ContainerCheckpointOptions co = checkpoint_options(0, dir_ / "c.rlvc");
  co.name = a.name();
  auto ck = checkpoint_container(co);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_EQ(a.status(), "") << "runc checkpoint ends the source";
  long at_dump = counter(src);
  EXPECT_GT(ck->rootfs_bytes, 0u);

  auto inspect = inspect_container(dir_ / "c.rlvc", false);
  ASSERT_TRUE(inspect.ok()) << inspect.status().to_string();
  EXPECT_NE(inspect->find("runc container: " + a.name()), std::string::npos) << *inspect;
  EXPECT_NE(inspect->find("./state/counter"), std::string::npos) << *inspect;
  EXPECT_NE(inspect->find("./state/greeting"), std::string::npos) << *inspect;
  EXPECT_EQ(inspect->find("./bin/busybox"), std::string::npos) << "unchanged files stay out";

  // Another "host": the same base rootfs, no config.json, none of the container's files.
  OciBundle dst(dir_ / "dst", {{}, {}, "", /*write_config=*/false});
  ASSERT_EQ(dst.error(), "");
  ContainerRestoreOptions ro = restore_options(dir_ / "c.rlvc");
  ro.name = b.name();
  ro.bundle = dst.path();
  auto r = restore_container(ro);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->runc_name, b.name());
  EXPECT_EQ(b.status(), "running");
  EXPECT_EQ(dst.file("/state/greeting"), "hello from relive-test\n");
  EXPECT_GE(counter(dst), at_dump);
  EXPECT_TRUE(wait_until([&] { return counter(dst) >= at_dump + 3; }, milliseconds(10000)))
      << "the counter did not carry on from " << at_dump << ": " << counter(dst);
  std::printf(
      "[measure] runc counter: frozen %.0f ms, archive %llu B (rootfs tar %llu B), "
      "dump %.0f ms, pack %.0f ms | verify %.0f ms, unpack %.0f ms, restore %.0f ms\n",
      ck->frozen_ms, static_cast<unsigned long long>(ck->archive_bytes),
      static_cast<unsigned long long>(ck->rootfs_bytes), ck->dump_ms, ck->pack_ms, r->verify_ms,
      r->unpack_ms, r->restore_ms);
}

TEST_F(RuncContainer, LeaveRunningKeepsTheSourceCounting) {
  OciBundle src(dir_ / "src", {kCounterArgs});
  RuncName a(unique("leave")), b(unique("leave-b"));
  start_counter(src, a);
  ContainerCheckpointOptions co = checkpoint_options(0, dir_ / "l.rlvc");
  co.name = a.name();
  co.leave_running = true;
  auto ck = checkpoint_container(co);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_EQ(a.status(), "running");
  long now = counter(src);
  EXPECT_TRUE(wait_until([&] { return counter(src) >= now + 2; }, milliseconds(10000)));

  OciBundle dst(dir_ / "dst", {{}, {}, "", /*write_config=*/false});
  ContainerRestoreOptions ro = restore_options(dir_ / "l.rlvc");
  ro.name = b.name();
  ro.bundle = dst.path();
  auto r = restore_container(ro);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(a.status(), "running");
  EXPECT_EQ(b.status(), "running");
  EXPECT_TRUE(wait_until([&] { return counter(dst) >= 3; }, milliseconds(10000)));
}

TEST_F(RuncContainer, NoSuchContainerIsNotFound) {
  ContainerCheckpointOptions co = checkpoint_options(0, dir_ / "x.rlvc");
  co.name = unique("no-such");
  auto ck = checkpoint_container(co);
  ASSERT_FALSE(ck.ok());
  EXPECT_EQ(ck.status().code(), Status::Code::kNotFound) << ck.status().to_string();
  EXPECT_NE(ck.status().message().find("does not exist"), std::string::npos)
      << ck.status().to_string();
  EXPECT_FALSE(exists(dir_ / "x.rlvc"));
}

// A host file as the container's stdout: CRIU cannot dump it (see oci_bundle.h); the error
// quotes CRIU, and the container is resumed and counts on.
TEST_F(RuncContainer, CriuFailureQuotesCriuAndTheSourceRunsOn) {
  OciBundle src(dir_ / "src", {kCounterArgs});
  RuncName a(unique("fail"));
  ASSERT_EQ(src.error(), "");
  ASSERT_EQ(a.start(src, dir_ / "host-stdout.txt"), "");
  ASSERT_TRUE(wait_until([&] { return counter(src) >= 2; }, milliseconds(10000)));
  ContainerCheckpointOptions co = checkpoint_options(0, dir_ / "f.rlvc");
  co.name = a.name();
  auto ck = checkpoint_container(co);
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.status().message().find("Can't lookup mount"), std::string::npos)
      << ck.status().to_string();
  EXPECT_FALSE(exists(dir_ / "f.rlvc"));
  EXPECT_EQ(a.status(), "running");
  long now = counter(src);
  EXPECT_TRUE(wait_until([&] { return counter(src) >= now + 2; }, milliseconds(10000)));
}

TEST_F(RuncContainer, CorruptArchiveRestoresNothing) {
  OciBundle src(dir_ / "src", {kCounterArgs});
  RuncName a(unique("corrupt")), b(unique("corrupt-b"));
  start_counter(src, a);
  ContainerCheckpointOptions co = checkpoint_options(0, dir_ / "k.rlvc");
  co.name = a.name();
  co.leave_running = true;
  ASSERT_TRUE(checkpoint_container(co).ok());
  std::string bytes = testing::read_all(dir_ / "k.rlvc");
  bytes[bytes.size() / 2] ^= 0x10;
  FILE* f = std::fopen((dir_ / "k.rlvc").c_str(), "w");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  OciBundle dst(dir_ / "dst", {{}, {}, "", /*write_config=*/false});
  ContainerRestoreOptions ro = restore_options(dir_ / "k.rlvc");
  ro.name = b.name();
  ro.bundle = dst.path();
  auto r = restore_container(ro);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().is_corruption()) << r.status().to_string();
  EXPECT_EQ(b.status(), "");
  EXPECT_FALSE(exists(dst.path() + "/config.json")) << "nothing written before verifying";
  EXPECT_EQ(a.status(), "running");
}

TEST_F(RuncContainer, EstablishedTcpConnectionInANamedNetns) {
  NetNs ns(unique("ns"));
  ASSERT_TRUE(ns.ok());
  std::string tcp = testing::test_bin_dir() + "/subjects/ct_tcp";
  OciBundle src(dir_ / "src", {{"/bin/ct_tcp", "/state/result"}, {tcp}, ns.path()});
  RuncName a(unique("tcp")), b(unique("tcp-b"));
  ASSERT_EQ(src.error(), "");
  ASSERT_EQ(a.start(src), "");
  ASSERT_TRUE(wait_until([&] { return src.file("/state/result").rfind("READY", 0) == 0; },
                         milliseconds(10000)))
      << src.file("/state/result");
  ContainerCheckpointOptions co = checkpoint_options(0, dir_ / "t.rlvc");
  co.name = a.name();
  co.tcp_established = true;
  auto ck = checkpoint_container(co);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_EQ(ck->processes, 2u);

  ContainerRestoreOptions ro = restore_options(dir_ / "t.rlvc");
  ro.name = b.name();
  auto r = restore_container(ro);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(::kill(r->root_pid, SIGUSR1), 0);
  // The restore put back the rootfs as it was at the dump: "READY 1" until the subject reports.
  ASSERT_TRUE(wait_until([&] { return src.file("/state/result").rfind("READY", 0) != 0; },
                         milliseconds(10000)));
  EXPECT_EQ(src.file("/state/result"), "OK\n");
}

}  // namespace
}  // namespace relive::ct
