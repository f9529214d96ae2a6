// CR/TR's page check on this test's own memory: a lazy dump's pagemap naming a buffer, hashes
// written from it, then the buffer compared after changes.
#include "transfer/page_hashes.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/file_util.h"
#include "drivers/criu/page_image.h"

namespace relive::transfer {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kPages = 6000;  // enough for the hashing to split between two threads

class PageHashesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relive-hashes-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    void* m =
        ::mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    mem_ = static_cast<char*>(m);
    for (size_t i = 0; i < kPages; ++i) std::memset(mem_ + i * kPage, static_cast<int>(i), kPage);
    base_ = reinterpret_cast<uint64_t>(mem_);
  }
  void TearDown() override {
    if (mem_ != nullptr) ::munmap(mem_, kPages * kPage);
    (void)remove_tree(dir_);
  }
  // A lazy dump's pagemap: one present entry (in the pages image: not checked), then the
  // buffer in two lazy entries.
  void write_pagemap() {
    criu::PagemapImage pm;
    pm.pages_id = 1;
    auto entry = [](uint64_t vaddr, uint64_t pages, uint32_t flags) {
      criu::PagemapEntry e;
      e.vaddr = vaddr, e.nr_pages = pages, e.has_flags = true, e.flags = flags;
      return e;
    };
    pm.entries = {entry(0x10000, 2, criu::kPePresent), entry(base_, 100, criu::kPeLazy),
                  entry(base_ + 100 * kPage, kPages - 100, criu::kPeLazy)};
    ASSERT_TRUE(write_file_atomic(dir_ + "/pagemap-" + std::to_string(pid_) + ".img",
                                  criu::encode_pagemap_image(pm))
                    .ok());
  }

  std::string dir_;
  char* mem_ = nullptr;
  uint64_t base_ = 0;
  pid_t pid_ = ::getpid();
};

TEST_F(PageHashesTest, LazyRangesAreTheLazyEntriesNotInThePagesImage) {
  criu::PagemapImage pm;
  criu::PagemapEntry lazy{0x1000, 2, false, true, criu::kPeLazy};
  criu::PagemapEntry both{0x9000, 1, false, true, criu::kPeLazy | criu::kPePresent};
  criu::PagemapEntry old{0x20000, 1, false, false, 0};
  pm.entries = {lazy, both, old};
  EXPECT_EQ(lazy_ranges(pm), (std::vector<criu::VaddrRange>{{0x1000, 2}}));
}

TEST_F(PageHashesTest, TheSameMemoryMatchesAndChangedPagesAreListed) {
  write_pagemap();
  ASSERT_TRUE(write_lazy_page_hashes(dir_, pid_, pid_).ok());
  auto same = compare_lazy_pages(dir_, pid_, pid_);
  ASSERT_TRUE(same.ok()) << same.status().to_string();
  EXPECT_TRUE(same->empty());

  mem_[5 * kPage + 17] ^= 1;  // in the first lazy entry
  mem_[4000 * kPage] ^= 1;    // in the second, in the second thread's half
  mem_[4001 * kPage + 4095] ^= 1;
  auto changed = compare_lazy_pages(dir_, pid_, pid_);
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(*changed,
            (std::vector<criu::VaddrRange>{{base_ + 5 * kPage, 1}, {base_ + 4000 * kPage, 2}}));
}

TEST_F(PageHashesTest, UnmappedPagesCannotBeHashedAndDifferWhenCompared) {
  write_pagemap();
  ASSERT_TRUE(write_lazy_page_hashes(dir_, pid_, pid_).ok());
  ASSERT_EQ(::munmap(mem_ + 10 * kPage, 2 * kPage), 0);
  auto differ = compare_lazy_pages(dir_, pid_, pid_);
  ASSERT_TRUE(differ.ok()) << differ.status().to_string();
  EXPECT_EQ(*differ, (std::vector<criu::VaddrRange>{{base_ + 10 * kPage, 2}}));
  Status s = write_lazy_page_hashes(dir_, pid_, pid_).status();
  EXPECT_EQ(s.code(), Status::Code::kIoError) << s.to_string();
}

TEST_F(PageHashesTest, HashesThatDoNotFitThePagemapAreCorrupt) {
  write_pagemap();
  ASSERT_TRUE(write_lazy_page_hashes(dir_, pid_, pid_).ok());
  std::string path = dir_ + "/" + page_hashes_name(pid_);
  auto hashes = read_file(path);
  ASSERT_TRUE(hashes.ok());
  ASSERT_TRUE(write_file_atomic(path, hashes->substr(8)).ok());
  EXPECT_EQ(compare_lazy_pages(dir_, pid_, pid_).status().code(), Status::Code::kCorruption);
  ASSERT_TRUE(::unlink(path.c_str()) == 0);
  EXPECT_FALSE(compare_lazy_pages(dir_, pid_, pid_).ok());
}

TEST_F(PageHashesTest, HashesTakenAheadGiveTheSameVerdict) {
  write_pagemap();
  ASSERT_TRUE(write_lazy_page_hashes(dir_, pid_, pid_).ok());
  mem_[7 * kPage] ^= 1;
  auto table = PageHashTable::of_anonymous_memory(pid_);
  ASSERT_TRUE(table.ok()) << table.status().to_string();
  EXPECT_GE(table->pages(), kPages);
  EXPECT_TRUE(table->find(base_ + 7 * kPage).has_value());
  EXPECT_FALSE(table->find(0x1000).has_value());  // never mapped
  auto with = compare_lazy_pages(dir_, pid_, pid_, &*table);
  auto without = compare_lazy_pages(dir_, pid_, pid_);
  auto alone = write_lazy_page_hashes(dir_, pid_, pid_);
  auto helped = write_lazy_page_hashes(dir_, pid_, pid_, &*table);
  ASSERT_TRUE(alone.ok() && helped.ok());
  EXPECT_EQ(alone->pages, kPages);
  EXPECT_EQ(alone->read_now, kPages);
  EXPECT_EQ(helped->pages, kPages);
  EXPECT_EQ(helped->read_now, 0u);
  ASSERT_TRUE(with.ok() && without.ok());
  EXPECT_EQ(*with, (std::vector<criu::VaddrRange>{{base_ + 7 * kPage, 1}}));
  EXPECT_EQ(*with, *without);
}

TEST_F(PageHashesTest, RehashedPagesAreCurrentAndUnvouchedOnesLoseTheirHash) {
  auto table = PageHashTable::of_anonymous_memory(pid_);
  ASSERT_TRUE(table.ok()) << table.status().to_string();
  std::optional<uint64_t> before = table->find(base_ + 9 * kPage);
  ASSERT_TRUE(before.has_value());
  mem_[9 * kPage] ^= 1;
  mem_[10 * kPage] ^= 1;
  // Pages the table does not cover are left alone; a range across a covered one is clipped.
  ASSERT_TRUE(table->rehash(pid_, {{0x1000, 1}, {base_ + 9 * kPage, 1}}).ok());
  auto fresh = PageHashTable::of_anonymous_memory(pid_);
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(table->find(base_ + 9 * kPage), before);
  EXPECT_EQ(table->find(base_ + 9 * kPage), fresh->find(base_ + 9 * kPage));
  EXPECT_NE(table->find(base_ + 10 * kPage), fresh->find(base_ + 10 * kPage));  // not rehashed
  uint64_t held = table->hashed_pages();
  table->keep_only({{base_, 9}, {base_ + 11 * kPage, kPages - 11}});
  EXPECT_FALSE(table->find(base_ + 9 * kPage).has_value());
  EXPECT_FALSE(table->find(base_ + 10 * kPage).has_value());
  EXPECT_TRUE(table->find(base_ + 8 * kPage).has_value());
  EXPECT_TRUE(table->find(base_ + 11 * kPage).has_value());
  EXPECT_LT(table->hashed_pages(), held - 2);  // everything outside the buffer went too
  size_t hint = 0;
  for (uint64_t i = 0; i < kPages; ++i)  // in-order lookups with a hint find what find() does
    ASSERT_EQ(table->find(base_ + i * kPage, &hint), table->find(base_ + i * kPage)) << i;
}

}  // namespace
}  // namespace relive::transfer
