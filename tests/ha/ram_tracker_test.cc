#include "ha/ram_tracker.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/file_util.h"
#include "common/scoped_fd.h"

namespace relive::ha {
namespace {

constexpr uint64_t kPage = 4096;

// A RAM file written through a shared mapping, as QEMU writes guest RAM.
class RamTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/dev/shm/relive-ram-tracker-test-" + std::to_string(::getpid());
    ASSERT_TRUE(make_dirs(dir_).ok());
    ScopedFd fd(::open((dir_ + "/ram").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::ftruncate(fd.get(), kBytes), 0);
    void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(p, MAP_FAILED);
    ram_ = static_cast<char*>(p);
  }
  void TearDown() override {
    if (ram_) ::munmap(ram_, kBytes);
    (void)remove_tree(dir_);
  }
  std::string shadow_bytes(uint64_t off, uint64_t len) {
    std::string out(len, '\0');
    ScopedFd fd(::open((dir_ + "/shadow").c_str(), O_RDONLY));
    EXPECT_EQ(::pread(fd.get(), out.data(), len, static_cast<off_t>(off)),
              static_cast<ssize_t>(len));
    return out;
  }

  static constexpr uint64_t kBytes = 64 * kPage;
  std::string dir_;
  char* ram_ = nullptr;
};

TEST_F(RamTrackerTest, FullCaptureThenOnlyTheChangedPagesInRuns) {
  Result<RamTracker> t = RamTracker::create(dir_ + "/ram", dir_ + "/shadow", kBytes);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  std::vector<RamRun> all = t->capture(/*full=*/true);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].offset, 0u);
  EXPECT_EQ(all[0].pages, 64u);
  EXPECT_TRUE(t->capture(false).empty()) << "nothing changed";

  // Pages 3-4 (a run), 31 and 32 (one run across the two halves scanned apart), 63 (the last).
  for (uint64_t p : {3, 4, 31, 32, 63}) ram_[p * kPage + 100] = static_cast<char>(p);
  std::vector<RamRun> runs = t->capture(false);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].offset, 3 * kPage);
  EXPECT_EQ(runs[0].pages, 2u);
  EXPECT_EQ(runs[1].offset, 31 * kPage);
  EXPECT_EQ(runs[1].pages, 2u);
  EXPECT_EQ(runs[2].offset, 63 * kPage);
  EXPECT_EQ(runs[2].pages, 1u);
  // The shadow holds the epoch's content, and the next capture starts from it.
  EXPECT_EQ(shadow_bytes(63 * kPage + 100, 1), std::string(1, static_cast<char>(63)));
  EXPECT_TRUE(t->capture(false).empty());
  // A page written back to what the shadow had is unchanged: content, not writes, counts.
  ram_[3 * kPage + 100] = 3;
  EXPECT_TRUE(t->capture(false).empty());
}

TEST_F(RamTrackerTest, RefusesAMissingRamFileOrAnOddSize) {
  EXPECT_FALSE(RamTracker::create(dir_ + "/absent", dir_ + "/shadow", kBytes).ok());
  EXPECT_FALSE(RamTracker::create(dir_ + "/ram", dir_ + "/shadow", kBytes - 1).ok());
}

}  // namespace
}  // namespace relive::ha
