#include "ha/dir_sync.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "common/file_util.h"
#include "test_util.h"
#include "transfer/test_channel.h"

namespace relive::ha {
namespace {

using relive::testing::read_all;
using relive::testing::TempDir;
using relive::testing::write_all_to;

class DirSync : public ::testing::Test {
 protected:
  std::string src() const { return dir_ / "src"; }
  std::string dst() const { return dir_ / "dst"; }
  // One epoch: scan, ship through a channel, apply on the other side, commit.
  std::vector<DirChange> sync(const std::vector<pid_t>& writers = {}) {
    Result<std::vector<DirChange>> changes = tracker_.scan(writers);
    EXPECT_TRUE(changes.ok()) << changes.status().to_string();
    transfer::testing::MemoryChannel ch;
    EXPECT_TRUE(send_dir_changes(&ch, *changes).ok());
    Result<std::vector<DirChange>> got =
        receive_dir_changes(&ch, static_cast<uint32_t>(changes->size()), 1 << 30);
    EXPECT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(*got, *changes);
    EXPECT_TRUE(apply_dir_changes(dst(), *got).ok());
    tracker_.commit();
    return *changes;
  }
  void expect_same(const std::string& rel) {
    EXPECT_EQ(read_all(dst() + "/" + rel), read_all(src() + "/" + rel)) << rel;
  }

  TempDir dir_;
  DirTracker tracker_{dir_ / "src"};
};

TEST_F(DirSync, FirstScanCopiesEverything) {
  ASSERT_TRUE(make_dirs(src() + "/sub/deeper").ok());
  write_all_to(src() + "/a.txt", "alpha");
  write_all_to(src() + "/sub/deeper/b.bin", std::string(200000, 'x'));
  ASSERT_EQ(::symlink("a.txt", (src() + "/link").c_str()), 0);
  sync();
  expect_same("a.txt");
  expect_same("sub/deeper/b.bin");
  char target[64] = {};
  ASSERT_GT(::readlink((dst() + "/link").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "a.txt");
}

TEST_F(DirSync, AnAppendShipsOnlyTheTail) {
  std::string big(1 << 20, 'a');
  write_all_to(src() + "/log", big);
  sync();
  {
    std::ofstream out(src() + "/log", std::ios::app);  // in place, as a log is appended to
    out << "appended";
  }
  std::vector<DirChange> changes = sync();
  EXPECT_LT(dir_change_bytes(changes), 70000u) << "more than the last block travelled";
  expect_same("log");
}

// Two writes of the same size within one tick of the kernel's file clock leave size, mtime and
// inode as they were (restoring mtime makes that certain here, as `touch -r` would).
TEST_F(DirSync, SameSizeWriteWithTheSameMtimeIsShipped) {
  ASSERT_TRUE(make_dirs(src()).ok());
  write_all_to(src() + "/state", "version-1");
  sync();
  struct stat before {};
  ASSERT_EQ(::stat((src() + "/state").c_str(), &before), 0);
  write_all_to(src() + "/state", "version-2");
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, (src() + "/state").c_str(), times, 0), 0);
  std::vector<DirChange> changes = sync();
  EXPECT_FALSE(changes.empty()) << "a changed file was taken for unchanged";
  expect_same("state");
}

// A write through a shared mapping to a page that is already dirty does not touch mtime at all.
TEST_F(DirSync, WriteThroughASharedMappingIsShipped) {
  ASSERT_TRUE(make_dirs(src()).ok());
  write_all_to(src() + "/mapped", std::string(8192, 'a'));
  int fd = ::open((src() + "/mapped").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char* m = static_cast<char*>(::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(m, MAP_FAILED);
  m[0] = 'b';  // dirties the page (and stamps mtime once)
  sync({::getpid()});
  struct stat before {};
  ASSERT_EQ(::stat((src() + "/mapped").c_str(), &before), 0);
  m[1] = 'c';  // the page is dirty already: no new timestamp
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, (src() + "/mapped").c_str(), times, 0), 0);
  std::vector<DirChange> changes = sync({::getpid()});
  EXPECT_FALSE(changes.empty()) << "the write through the mapping was missed";
  expect_same("mapped");
  ::munmap(m, 8192);
  ::close(fd);
  // Unmapped since the last scan: still read once more, then trusted again.
  EXPECT_TRUE(sync().empty());
}

TEST_F(DirSync, NothingChangedShipsNothing) {
  write_all_to(src() + "/f", "same");
  sync();
  EXPECT_TRUE(sync().empty());
}

TEST_F(DirSync, RemovalsTruncationsAndReplacements) {
  ASSERT_TRUE(make_dirs(src() + "/d").ok());
  write_all_to(src() + "/d/gone", "bye");
  write_all_to(src() + "/shrinks", std::string(300000, 'z'));
  write_all_to(src() + "/replaced", std::string(100000, 'q'));
  sync();
  ASSERT_EQ(::unlink((src() + "/d/gone").c_str()), 0);
  ASSERT_EQ(::rmdir((src() + "/d").c_str()), 0);
  ASSERT_EQ(::truncate((src() + "/shrinks").c_str(), 10), 0);
  // A new inode with zero blocks where the old one had data: the replica must not keep the old.
  ASSERT_EQ(::unlink((src() + "/replaced").c_str()), 0);
  write_all_to(src() + "/replaced", std::string(100000, '\0') + "end");
  sync();
  struct stat st {};
  EXPECT_NE(::stat((dst() + "/d").c_str(), &st), 0) << "removed directory is still there";
  expect_same("shrinks");
  expect_same("replaced");
}

TEST_F(DirSync, UnsafePathsAndShortStreamsAreRefused) {
  transfer::testing::MemoryChannel ch;
  ASSERT_TRUE(send_dir_changes(&ch, {{DirChange::Kind::kWrite, "../escape", 0, 0, "x"}}).ok());
  Result<std::vector<DirChange>> got = receive_dir_changes(&ch, 1, 1 << 20);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("unsafe path"), std::string::npos);

  transfer::testing::MemoryChannel ch2;
  ASSERT_TRUE(send_dir_changes(&ch2, {{DirChange::Kind::kWrite, "f", 0, 0, "x"}}).ok());
  Result<std::vector<DirChange>> two = receive_dir_changes(&ch2, 2, 1 << 20);
  ASSERT_FALSE(two.ok()) << "fewer changes than announced must not pass";
}

TEST_F(DirSync, SocketsCannotBeReplicated) {
  ASSERT_TRUE(make_dirs(src()).ok());
  ASSERT_EQ(::mkfifo((src() + "/fifo").c_str(), 0600), 0);
  Result<std::vector<DirChange>> r = tracker_.scan();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnsupported);
}

}  // namespace
}  // namespace relive::ha
