// Dump and restore real processes with the real CRIU (needs root; skipped only when no CRIU is
// installed at all).
#include "drivers/criu/criu.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "drivers/criu/core_image.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/image_check.h"
#include "drivers/criu/page_image.h"

namespace relive::criu {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr size_t kCountWidth = 20;

// The test subject, run in a forked child: counts in memory and publishes the count at offset 0
// of `path` as a fixed-width record, so the file's size never changes (CRIU refuses to restore a
// regular file whose size changed since the dump). It holds no terminal and no inherited fds,
// so neither --shell-job nor external-resource options are needed.
[[noreturn]] void counter_main(const char* path) {
  ::setsid();
  int null = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
  ::close_range(3, ~0u, 0);
  int out = ::open(path, O_WRONLY);
  if (out < 0) ::_exit(2);
  for (unsigned long long n = 1;; ++n) {
    char buf[kCountWidth + 1];
    std::snprintf(buf, sizeof buf, "%020llu", n);
    if (::pwrite(out, buf, kCountWidth, 0) != static_cast<ssize_t>(kCountWidth)) ::_exit(3);
    ::usleep(2000);
  }
}

void on_signal(int) {}

// The test subject for the core image, run in a forked child: arms ITIMER_REAL (5 s, repeating)
// and handles SIGALRM and SIGUSR1 (blocking SIGUSR2 meanwhile), writes a byte to `ready`, closes
// every fd (so the parent reads EOF once nothing is left for CRIU to dump but the process), then
// waits.
[[noreturn]] void timer_main(int ready) {
  ::setsid();
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGUSR2);
  if (::sigaction(SIGALRM, &sa, nullptr) != 0 || ::sigaction(SIGUSR1, &sa, nullptr) != 0)
    ::_exit(2);
  itimerval five_s{{5, 0}, {5, 0}};
  if (::setitimer(ITIMER_REAL, &five_s, nullptr) != 0) ::_exit(3);
  int null = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
  if (::write(ready, "r", 1) != 1) ::_exit(4);
  ::close_range(3, ~0u, 0);
  for (;;) ::pause();
}

// Kills and reaps a child of ours on scope exit, whatever the test did.
struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid > 0 && ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
  }
};

DumpOptions dump_options(pid_t pid, const std::string& images) {
  DumpOptions o;
  o.pid = pid;
  o.images_dir = images;
  return o;
}

RestoreOptions restore_options(const std::string& images, bool as_child) {
  RestoreOptions o;
  o.images_dir = images;
  o.as_child = as_child;
  return o;
}

bool wait_until(const std::function<bool()>& cond, milliseconds limit = milliseconds(30000)) {
  auto deadline = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

class CriuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto criu = find_criu();
    if (!criu.ok() && criu.status().code() == Status::Code::kNotFound) {
      GTEST_SKIP() << criu.status().to_string();
    }
    ASSERT_TRUE(criu.ok()) << criu.status().to_string();
    ASSERT_EQ(::geteuid(), 0u) << "CRIU needs root";
    char tmpl[] = "/tmp/relive-criu-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    images_ = dir_ + "/images";
    count_file_ = dir_ + "/count";
    ASSERT_TRUE(write_file_atomic(count_file_, std::string(kCountWidth, '0')).ok());
  }
  void TearDown() override {
    if (!dir_.empty()) (void)remove_tree(dir_);
  }

  pid_t start_counter() {
    pid_t pid = ::fork();
    if (pid == 0) counter_main(count_file_.c_str());
    return pid;
  }
  uint64_t count() {
    auto text = read_file(count_file_);
    return text.ok() ? std::strtoull(text->c_str(), nullptr, 10) : 0;
  }
  bool count_exceeds(uint64_t v) {
    return wait_until([&] { return count() > v; });
  }
  // Dumps a fresh counter, lets CRIU kill it and reaps it; returns its PID and last count.
  std::pair<pid_t, uint64_t> dump_and_kill_counter(CriuStats* stats = nullptr) {
    pid_t pid = start_counter();
    EXPECT_TRUE(count_exceeds(20));
    auto st = dump(dump_options(pid, images_));
    EXPECT_TRUE(st.ok()) << st.status().to_string();
    if (st.ok() && stats != nullptr) *stats = *st;
    int ws = 0;
    EXPECT_EQ(::waitpid(pid, &ws, 0), pid);  // frees the PID for the restore at once
    EXPECT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) << ws;
    return {pid, count()};
  }

  std::string dir_, images_, count_file_;
};

TEST_F(CriuTest, CheckLooksGood) { EXPECT_TRUE(check().ok()) << check().to_string(); }

TEST_F(CriuTest, RestoredProcessContinuesCountingFromItsMemory) {
  CriuStats stats;
  auto [pid, at_dump] = dump_and_kill_counter(&stats);
  EXPECT_GT(stats.frozen_ms, 0);
  EXPECT_GT(stats.pages_written, 0u);
  std::printf(
      "criu dump: frozen %.2f ms, freezing %.2f ms, memdump %.2f ms, memwrite %.2f ms, "
      "%llu pages written\n",
      stats.frozen_ms, stats.freezing_ms, stats.memdump_ms, stats.memwrite_ms,
      static_cast<unsigned long long>(stats.pages_written));
  // The dumped counter was reaped (dump_and_kill_counter): nothing writes the file now.
  ASSERT_EQ(count(), at_dump) << "nothing may write the file while the tree is dumped";

  auto restored = restore(restore_options(images_, /*as_child=*/true));
  ASSERT_TRUE(restored.ok()) << restored.status().to_string();
  ChildGuard guard{*restored};
  EXPECT_EQ(*restored, pid);
  // A restarted counter would write 1, 2, ...; only the restored memory continues past at_dump.
  EXPECT_TRUE(count_exceeds(at_dump + 10)) << count() << " vs " << at_dump;
  std::printf("criu restore: %.2f ms\n", read_stats(images_).restore_ms);
  EXPECT_GT(read_stats(images_).restore_ms, 0);
  // as_child: the restored root is our child, so we can reap it.
  ASSERT_EQ(::kill(*restored, SIGKILL), 0);
  EXPECT_EQ(::waitpid(*restored, nullptr, 0), *restored);
  guard.pid = -1;
}

TEST_F(CriuTest, LeaveRunningDumpThenDetachedRestore) {
  ChildGuard original{start_counter()};
  ASSERT_TRUE(count_exceeds(20));
  DumpOptions options = dump_options(original.pid, images_);
  options.leave_running = true;
  auto st = dump(options);
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  uint64_t after_dump = count();
  EXPECT_TRUE(count_exceeds(after_dump + 20)) << "the original keeps running";
  ASSERT_EQ(::kill(original.pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(original.pid, nullptr, 0), original.pid);
  pid_t pid = std::exchange(original.pid, -1);
  uint64_t at_kill = count();

  auto restored = restore(restore_options(images_, /*as_child=*/false));
  ASSERT_TRUE(restored.ok()) << restored.status().to_string();
  EXPECT_EQ(*restored, pid);
  // Detached: reparented to PID 1, not our child.
  EXPECT_EQ(::waitpid(*restored, nullptr, WNOHANG), -1);
  // It resumes from the dump-time count, below what the original reached before being killed.
  EXPECT_TRUE(wait_until([&] { return count() < at_kill; })) << count() << " vs " << at_kill;
  uint64_t resumed = count();
  EXPECT_TRUE(count_exceeds(resumed + 10));
  ASSERT_EQ(::kill(*restored, SIGKILL), 0);
  std::string proc = "/proc/" + std::to_string(*restored);
  EXPECT_TRUE(wait_until([&] { return !std::filesystem::exists(proc); }, milliseconds(10000)));
}

TEST_F(CriuTest, DumpOfMissingProcessQuotesCriu) {
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);
  auto st = dump(dump_options(gone, images_));
  ASSERT_FALSE(st.ok());
  const std::string& msg = st.status().message();
  EXPECT_EQ(st.status().code(), Status::Code::kIoError);
  EXPECT_NE(msg.find("criu dump of pid " + std::to_string(gone) + " failed (exit status 1)"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("Error ("), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such process"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[log: " + images_ + "/dump.log]"), std::string::npos) << msg;
  std::printf("%s\n", st.status().to_string().c_str());
}

TEST_F(CriuTest, PagemapAccountsForEveryDumpedPage) {
  auto [pid, at_dump] = dump_and_kill_counter();
  auto image = read_file(images_ + "/pagemap-" + std::to_string(pid) + ".img");
  ASSERT_TRUE(image.ok()) << image.status().to_string();
  auto summary = parse_pagemap_image(*image);
  ASSERT_TRUE(summary.ok()) << summary.status().to_string();
  EXPECT_EQ(
      summary->present_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)),
      std::filesystem::file_size(images_ + "/pages-" + std::to_string(summary->pages_id) + ".img"));
  EXPECT_TRUE(check_pages_complete(images_).ok());
  // Re-encoding CRIU's pagemap gives back its bytes; a dump without a parent is all present.
  auto decoded = decode_pagemap_image(*image);
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  EXPECT_EQ(encode_pagemap_image(*decoded), *image);
  auto same = with_present_pages(*decoded, {});
  ASSERT_TRUE(same.ok()) << same.status().to_string();
  EXPECT_EQ(present_ranges(*same), present_ranges(*decoded));
}

TEST_F(CriuTest, CoreImageHoldsItimersAndSignalActions) {
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ChildGuard child{::fork()};
  if (child.pid == 0) timer_main(ready[1]);
  ::close(ready[1]);
  char buf[2];
  EXPECT_EQ(::read(ready[0], buf, 2), 1);
  EXPECT_EQ(::read(ready[0], buf, 2), 0);  // the subject holds no fd now
  ::close(ready[0]);
  DumpOptions options = dump_options(child.pid, images_);
  options.leave_running = true;
  auto st = dump(options);
  ASSERT_TRUE(st.ok()) << st.status().to_string();

  auto image = read_file(images_ + "/core-" + std::to_string(child.pid) + ".img");
  ASSERT_TRUE(image.ok()) << image.status().to_string();
  auto core = decode_task_core(*image);
  ASSERT_TRUE(core.ok()) << core.status().to_string();
  EXPECT_EQ(core->real.interval_us, 5000000u);
  EXPECT_GT(core->real.value_us, 0u);
  EXPECT_LE(core->real.value_us, 5000000u);
  EXPECT_EQ(core->virt, ITimer{});
  EXPECT_EQ(core->prof, ITimer{});
  ASSERT_EQ(core->sigactions.size(), 62u);
  auto action = [&](int signo) {
    for (const SigAction& sa : core->sigactions)
      if (sa.signo == signo) return sa;
    ADD_FAILURE() << "no sigaction for signal " << signo;
    return SigAction{};
  };
  SigAction usr1 = action(SIGUSR1);
  EXPECT_EQ(usr1.handler, reinterpret_cast<uint64_t>(&on_signal));
  EXPECT_EQ(usr1.mask, uint64_t{1} << (SIGUSR2 - 1));
  constexpr uint64_t kSaRestorer = 0x04000000;  // <asm/signal-defs.h>; glibc sets it
  EXPECT_NE(usr1.flags & kSaRestorer, 0u);
  EXPECT_NE(usr1.restorer, 0u);
  EXPECT_FALSE(usr1.compat);
  EXPECT_EQ(action(SIGALRM).handler, usr1.handler);
  EXPECT_EQ(action(SIGUSR2).handler, uint64_t{0});  // SIG_DFL
  EXPECT_EQ(action(SIGKILL + 1).signo, SIGKILL + 1);
  EXPECT_EQ(action(SIGSTOP + 1).signo, SIGSTOP + 1);
}

// CRIU 4.1.1 itself would spin forever on this (see image_check.h); the driver refuses first.
TEST_F(CriuTest, RestoreFromTruncatedPagesIsCorruption) {
  auto [pid, at_dump] = dump_and_kill_counter();
  std::string pages = images_ + "/pages-1.img";
  auto size = std::filesystem::file_size(pages);
  ASSERT_GT(size, 4096u);
  std::filesystem::resize_file(pages, size / 2);

  auto restored = restore(restore_options(images_, /*as_child=*/false));
  ASSERT_FALSE(restored.ok());
  EXPECT_TRUE(restored.status().is_corruption()) << restored.status().to_string();
  EXPECT_NE(restored.status().message().find(pages + " holds " + std::to_string(size / 2)),
            std::string::npos)
      << restored.status().message();
  std::printf("%s\n", restored.status().to_string().c_str());
  EXPECT_EQ(count(), at_dump);
}

TEST_F(CriuTest, RestoreFromCorruptCoreImageQuotesCriu) {
  auto [pid, at_dump] = dump_and_kill_counter();
  std::string core = images_ + "/core-" + std::to_string(pid) + ".img";
  auto size = std::filesystem::file_size(core);
  std::filesystem::resize_file(core, size / 2);

  auto restored = restore(restore_options(images_, /*as_child=*/false));
  ASSERT_FALSE(restored.ok());
  const std::string& msg = restored.status().message();
  EXPECT_EQ(restored.status().code(), Status::Code::kIoError);
  EXPECT_NE(msg.find("criu restore from " + images_ + " failed (exit status 1)"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("Error ("), std::string::npos) << msg;
  EXPECT_NE(msg.find("[log: " + images_ + "/restore.log]"), std::string::npos) << msg;
  std::printf("%s\n", restored.status().to_string().c_str());
  // Nothing half-restored keeps running: the PID goes away (CRIU kills its partial tree; PID 1
  // reaps it), and the count is still where the dump left it.
  std::string proc = "/proc/" + std::to_string(pid);
  EXPECT_TRUE(wait_until([&] { return !std::filesystem::exists(proc); }, milliseconds(30000)));
  EXPECT_EQ(count(), at_dump);
}

TEST_F(CriuTest, RestoreFromMissingDirectoryIsNotFound) {
  auto restored = restore(restore_options(dir_ + "/nothing-here", false));
  EXPECT_EQ(restored.status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace relive::criu
