#include "trace/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "common/file_util.h"
#include "common/hash.h"
#include "trace/test_samples.h"

namespace relive::trace {
namespace {

using testing::TempDir;

// Names in `dir`, hidden temporaries included.
int count_entries(const std::string& dir) {
  int n = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.' || std::strlen(e->d_name) > 2;
  ::closedir(d);
  return n;
}

void put(const std::string& path, const std::string& contents, mode_t mode = 0644) {
  ASSERT_TRUE(write_file_atomic(path, contents).ok());
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

TEST(FileStore, NamesCopiesByTheirContentHash) {
  TempDir dir;
  put(dir / "a.txt", "contents of a");
  auto store = FileStore::open(dir / "files");
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  auto name = store->add(dir / "a.txt");
  ASSERT_TRUE(name.ok()) << name.status().to_string();
  EXPECT_EQ(*name, hash128_hex("contents of a"));
  EXPECT_TRUE(FileStore::is_valid_name(*name));
  EXPECT_EQ(*read_file(store->path_of(*name)), "contents of a");
}

TEST(FileStore, DedupesIdenticalContents) {
  TempDir dir;
  put(dir / "one", "same bytes");
  put(dir / "two", "same bytes");
  put(dir / "three", "other bytes");
  auto store = FileStore::open(dir / "files");
  auto one = store->add(dir / "one");
  auto two = store->add(dir / "two");
  auto three = store->add(dir / "three");
  EXPECT_EQ(*one, *two);
  EXPECT_NE(*one, *three);
  EXPECT_EQ(count_entries(dir / "files"), 2);
}

// sync() covers every copy added since the last one: a copy gone before it is an error, not a
// store reported durable without it; a second sync() has nothing left to do.
TEST(FileStore, SyncCoversEveryCopyAddedSinceTheLastSync) {
  TempDir dir;
  put(dir / "a", "first copy");
  put(dir / "b", "second copy");
  auto store = FileStore::open(dir / "files");
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  auto a = store->add(dir / "a");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_TRUE(store->sync().ok());
  auto b = store->add(dir / "b");
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  ASSERT_EQ(::unlink(store->path_of(*b).c_str()), 0);
  Status s = store->sync();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.to_string().find(*b), std::string::npos) << s.to_string();
  put(store->path_of(*b), "second copy", 0444);
  EXPECT_TRUE(store->sync().ok());
  EXPECT_TRUE(store->sync().ok());
  EXPECT_EQ(*read_file(store->path_of(*a)), "first copy");
}

// A file whose timestamps were long settled when it was read (a system program) is trusted
// from its memo afterwards: one read for many adds.
TEST(FileStore, RemembersUnchangedSettledFiles) {
  TempDir dir;
  auto store = FileStore::open(dir / "files");
  auto first = store->add("/usr/bin/env");
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(*store->add("/usr/bin/env"), *first);
  EXPECT_EQ(store->contents_read(), 1u);
}

// Rewritten in place with the same size and its mtime put back (what two writes within one
// tick of the kernel's file clock look like): the memo must not hide the new contents.
TEST(FileStore, SameSizeRewriteWithTheSameMtimeIsReadAgain) {
  TempDir dir;
  put(dir / "f", "version 1");
  auto store = FileStore::open(dir / "files");
  auto first = store->add(dir / "f");
  struct stat st;
  ASSERT_EQ(::stat((dir / "f").c_str(), &st), 0);
  int fd = ::open((dir / "f").c_str(), O_WRONLY);
  ASSERT_EQ(::pwrite(fd, "VERSION 1", 9, 0), 9);
  timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::futimens(fd, times), 0);
  ::close(fd);
  auto second = store->add(dir / "f");
  EXPECT_NE(*second, *first);
  EXPECT_EQ(*read_file(store->path_of(*second)), "VERSION 1");
}

// Just written: not settled, so even an untouched file is read again on the next add.
TEST(FileStore, AFreshFileIsReadAgainUntilItsTimestampsSettle) {
  TempDir dir;
  put(dir / "f", "fresh");
  auto store = FileStore::open(dir / "files");
  auto first = store->add(dir / "f");
  EXPECT_EQ(*store->add(dir / "f"), *first);
  EXPECT_EQ(store->contents_read(), 2u);
}

TEST(FileStore, CopiesAChangedFileAgain) {
  TempDir dir;
  put(dir / "f", "version 1");
  auto store = FileStore::open(dir / "files");
  auto first = store->add(dir / "f");
  put(dir / "f", "version two");
  auto second = store->add(dir / "f");
  EXPECT_NE(*first, *second);
  EXPECT_EQ(*read_file(store->path_of(*first)), "version 1");
  EXPECT_EQ(*read_file(store->path_of(*second)), "version two");
}

TEST(FileStore, CopiesAreReadOnlyAndKeepExecuteBits) {
  TempDir dir;
  put(dir / "prog", "#!/bin/sh\n", 0755);
  put(dir / "data", "plain", 0600);
  auto store = FileStore::open(dir / "files");
  struct stat st;
  ASSERT_EQ(::stat(store->path_of(*store->add(dir / "prog")).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u);
  ASSERT_EQ(::stat(store->path_of(*store->add(dir / "data")).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
}

TEST(FileStore, AddsExecuteBitsToAnExistingCopy) {
  TempDir dir;
  put(dir / "data", "same", 0644);
  put(dir / "prog", "same", 0755);
  auto store = FileStore::open(dir / "files");
  auto name = store->add(dir / "data");
  ASSERT_EQ(*store->add(dir / "prog"), *name);
  struct stat st;
  ASSERT_EQ(::stat(store->path_of(*name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0111, 0111u);
}

TEST(FileStore, StreamsFilesLargerThanItsBuffer) {
  TempDir dir;
  std::string big(3 * (1 << 20) + 12345, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);
  put(dir / "big", big);
  auto store = FileStore::open(dir / "files");
  auto name = store->add(dir / "big");
  ASSERT_TRUE(name.ok()) << name.status().to_string();
  EXPECT_EQ(*name, hash128_hex(big));
  EXPECT_EQ(*read_file(store->path_of(*name)), big);
}

TEST(FileStore, EmptyFile) {
  TempDir dir;
  put(dir / "empty", "");
  auto store = FileStore::open(dir / "files");
  auto name = store->add(dir / "empty");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(*name, hash128_hex(""));
  EXPECT_TRUE(store->verify(*name).ok());
}

TEST(FileStore, MissingFileIsNotFound) {
  TempDir dir;
  auto store = FileStore::open(dir / "files");
  EXPECT_EQ(store->add(dir / "nope").status().code(), Status::Code::kNotFound);
}

TEST(FileStore, DirectoryIsInvalidArgument) {
  TempDir dir;
  auto store = FileStore::open(dir / "files");
  EXPECT_EQ(store->add(dir.path()).status().code(), Status::Code::kInvalidArgument);
}

TEST(FileStore, OpenCreatesNestedDirectories) {
  TempDir dir;
  ASSERT_TRUE(FileStore::open(dir / "a/b/files").ok());
  struct stat st;
  EXPECT_EQ(::stat((dir / "a/b/files").c_str(), &st), 0);
}

TEST(FileStore, VerifyAcceptsAnIntactCopy) {
  TempDir dir;
  put(dir / "f", "intact");
  auto store = FileStore::open(dir / "files");
  auto name = store->add(dir / "f");
  auto path = store->verify(*name);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  EXPECT_EQ(*path, store->path_of(*name));
}

TEST(FileStore, VerifyRejectsAModifiedCopy) {
  TempDir dir;
  put(dir / "f", "intact");
  auto store = FileStore::open(dir / "files");
  auto name = store->add(dir / "f");
  put(store->path_of(*name), "tampered");
  Status s = store->verify(*name).status();
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
}

TEST(FileStore, VerifyRejectsAMissingCopy) {
  TempDir dir;
  auto store = FileStore::open(dir / "files");
  Status s = store->verify(hash128_hex("never stored")).status();
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("missing"), std::string::npos);
}

TEST(FileStore, VerifyRejectsNamesThatEscapeTheStore) {
  TempDir dir;
  auto store = FileStore::open(dir / "files");
  for (const char* name : {"../header", "", "/etc/passwd", "0123456789ABCDEF0123456789abcdef",
                           "0123456789abcdef0123456789abcde"}) {
    EXPECT_TRUE(store->verify(name).status().is_corruption()) << name;
  }
}

}  // namespace
}  // namespace relive::trace
