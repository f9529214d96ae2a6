// Work directories and the sweep of those whose owner died without removing them.
#include "common/work_dir.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/file_util.h"

namespace relive {
namespace {

namespace fs = std::filesystem;

class WorkDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relive-workdir-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    parent_ = tmpl;
  }
  void TearDown() override { (void)remove_tree(parent_); }

  // A WorkDir made by a child that is then killed: nobody removes it.
  std::string abandoned(const std::string& tag) {
    int p[2];
    EXPECT_EQ(::pipe(p), 0);
    pid_t child = ::fork();
    if (child == 0) {
      auto w = WorkDir::create(parent_, tag);
      std::string path = w.ok() ? w->path() : "";
      (void)!::write(p[1], path.data(), path.size());
      ::close(p[1]);
      ::pause();
      ::_exit(0);
    }
    ::close(p[1]);
    char buf[512];
    ssize_t n = ::read(p[0], buf, sizeof buf);
    ::close(p[0]);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

  std::string parent_;
};

TEST_F(WorkDirTest, IsPrivateAndGoesWithItsOwner) {
  std::string path;
  {
    auto w = WorkDir::create(parent_, "x");
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    path = w->path();
    EXPECT_TRUE(fs::path(path).filename().string().starts_with("relive-x-"));
    EXPECT_EQ(fs::status(path).permissions() & fs::perms::all, fs::perms::owner_all);
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(WorkDirTest, TheSweepRemovesOnlyDirectoriesWhoseOwnerDied) {
  auto live = WorkDir::create(parent_, "migrate");
  ASSERT_TRUE(live.ok());
  std::string dead = abandoned("migrate");
  ASSERT_FALSE(dead.empty());
  ASSERT_TRUE(fs::exists(dead));
  std::string other_kind = abandoned("incoming");
  auto kept = WorkDir::create(parent_, "migrate");
  ASSERT_TRUE(kept.ok());
  std::string kept_path = kept->keep();
  fs::create_directory(parent_ + "/relive-migrate-legacy");  // an older relive's: no .owner

  EXPECT_EQ(WorkDir::remove_abandoned(parent_, "migrate"), 1);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live->path()));
  EXPECT_TRUE(fs::exists(other_kind));
  EXPECT_TRUE(fs::exists(kept_path));
  EXPECT_TRUE(fs::exists(parent_ + "/relive-migrate-legacy"));
  EXPECT_EQ(WorkDir::remove_abandoned(parent_, "migrate"), 0);
  EXPECT_EQ(WorkDir::remove_abandoned(parent_ + "/missing", "migrate"), 0);
}

// Owners that create and sweep at the same time (concurrent migrations into one relived) never
// lose a live directory: its .owner is locked before it has that name.
TEST_F(WorkDirTest, ConcurrentCreatorsAndSweepersNeverRemoveALiveDirectory) {
  std::atomic<int> lost{0};
  std::vector<std::thread> owners;
  for (int t = 0; t < 6; ++t)
    owners.emplace_back([&] {
      for (int i = 0; i < 60; ++i) {
        auto w = WorkDir::create(parent_, "incoming");
        if (!w.ok()) {
          ++lost;
          continue;
        }
        WorkDir::remove_abandoned(parent_, "incoming");
        if (!fs::exists(w->path() + "/.owner")) ++lost;
      }
    });
  for (auto& o : owners) o.join();
  EXPECT_EQ(lost.load(), 0);
}

}  // namespace
}  // namespace relive
