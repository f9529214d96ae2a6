#include "transfer/page_cache.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "test_util.h"
#include "transfer/test_channel.h"

namespace relive::transfer {
namespace {

using relive::testing::TempDir;
using testing::MemoryChannel;

constexpr uint64_t kPage = 4096;

// `n` pages whose bytes name their pid, address and a generation.
std::string pages(pid_t pid, uint64_t vaddr, size_t n, char generation = 'a') {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    std::string page(kPage, generation);
    std::string tag = std::to_string(pid) + "@" + std::to_string(vaddr + i * kPage);
    page.replace(0, tag.size(), tag);
    out += page;
  }
  return out;
}

std::string read(PageCache* cache, pid_t pid, uint64_t vaddr, Status* status) {
  std::string out(kPage, '\0');
  *status = cache->read_page(pid, vaddr, out.data());
  return out;
}

TEST(RangeSet, MergesAdjacentAndOverlappingRanges) {
  RangeSet s;
  s.add(0x1000, 0x1000);
  s.add(0x3000, 0x1000);
  EXPECT_TRUE(s.covers(0x1000, 0x1000));
  EXPECT_FALSE(s.covers(0x1000, 0x3000));  // the hole at 0x2000
  EXPECT_FALSE(s.covers(0x2000, 0x1000));
  EXPECT_EQ(s.bytes(), 0x2000u);

  s.add(0x2000, 0x1000);  // fills the hole: one range
  EXPECT_TRUE(s.covers(0x1000, 0x3000));
  EXPECT_EQ(s.bytes(), 0x3000u);

  s.add(0x1800, 0x4000);  // overlaps the end
  EXPECT_TRUE(s.covers(0x1000, 0x4800));
  EXPECT_FALSE(s.covers(0x1000, 0x4801));
  EXPECT_EQ(s.bytes(), 0x4800u);
}

TEST(RangeSet, OneRangeSwallowsSeveral) {
  RangeSet s;
  for (uint64_t at = 0x10000; at < 0x20000; at += 0x2000) s.add(at, 0x1000);
  EXPECT_EQ(s.bytes(), 0x8000u);
  s.add(0xf000, 0x12000);
  EXPECT_TRUE(s.covers(0xf000, 0x12000));
  EXPECT_EQ(s.bytes(), 0x12000u);
  s.add(0x12000, 0x1000);  // already inside
  EXPECT_EQ(s.bytes(), 0x12000u);
}

TEST(RangeSet, CoversNothingBeforeOrAfter) {
  RangeSet s;
  EXPECT_FALSE(s.covers(0, kPage));
  s.add(0x7fff12345000, 3 * kPage);
  EXPECT_FALSE(s.covers(0x7fff12344000, kPage));
  EXPECT_TRUE(s.covers(0x7fff12345000, kPage));
  EXPECT_TRUE(s.covers(0x7fff12347000, kPage));
  EXPECT_FALSE(s.covers(0x7fff12348000, kPage));
  EXPECT_FALSE(s.covers(0x7fff12347000, 2 * kPage));
}

class PageCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<PageCache> c = PageCache::create(dir_ / "cache");
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    cache_.emplace(std::move(c).value());
  }

  // Sends one round through `ch_` and receives it.
  Status round(const std::vector<std::tuple<pid_t, uint64_t, std::string>>& runs) {
    PageSender out(&ch_);
    for (const auto& [pid, vaddr, bytes] : runs) RELIVE_RETURN_IF_ERROR(out.add(pid, vaddr, bytes));
    RELIVE_RETURN_IF_ERROR(out.finish());
    return cache_->receive(&ch_, migration::PageRound{round_++, out.pages()});
  }

  void expect_page(pid_t pid, uint64_t vaddr, const std::string& want) {
    Status s;
    std::string got = read(&*cache_, pid, vaddr, &s);
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_EQ(got, want) << std::hex << vaddr;
  }

  TempDir dir_;
  MemoryChannel ch_;
  std::optional<PageCache> cache_;
  uint32_t round_ = 0;
};

TEST_F(PageCacheTest, ReceivesPagesAndReadsThemBack) {
  const uint64_t high = 0x7fff12345000;
  ASSERT_TRUE(round({{100, high, pages(100, high, 3)},
                     {100, 0x400000, pages(100, 0x400000, 1)},
                     {200, high, pages(200, high, 1)}})
                  .ok());
  EXPECT_EQ(cache_->pages_received(), 5u);
  for (int i = 0; i < 3; ++i) expect_page(100, high + i * kPage, pages(100, high + i * kPage, 1));
  expect_page(100, 0x400000, pages(100, 0x400000, 1));
  expect_page(200, high, pages(200, high, 1));
  EXPECT_TRUE(ch_.raw.empty());
}

TEST_F(PageCacheTest, PageNeverSentIsNotFound) {
  const uint64_t high = 0x7fff12345000;
  ASSERT_TRUE(round({{100, high, pages(100, high, 1)}}).ok());
  for (auto [pid, vaddr] : {std::pair<pid_t, uint64_t>{100, high + kPage},
                            {100, high - kPage},
                            {100, 0x400000},
                            {101, high}}) {
    Status s;
    read(&*cache_, pid, vaddr, &s);
    EXPECT_EQ(s.code(), Status::Code::kNotFound) << pid << " " << std::hex << vaddr;
    EXPECT_NE(s.message().find("was never sent"), std::string::npos) << s.to_string();
  }
}

TEST_F(PageCacheTest, LaterRoundOverwritesEarlier) {
  const uint64_t at = 0x7f0000001000;
  ASSERT_TRUE(round({{7, at, pages(7, at, 2, 'a')}}).ok());
  ASSERT_TRUE(round({{7, at + kPage, pages(7, at + kPage, 1, 'b')}}).ok());
  expect_page(7, at, pages(7, at, 1, 'a'));
  expect_page(7, at + kPage, pages(7, at + kPage, 1, 'b'));
  EXPECT_EQ(cache_->pages_received(), 3u);
}

TEST_F(PageCacheTest, RunsCrossRegionBoundariesAndFarApartRegions) {
  const uint64_t boundary = 1ull << 30;  // the cache's region size
  const uint64_t far = 0x7ffe00000000;
  ASSERT_TRUE(round({{9, boundary - kPage, pages(9, boundary - kPage, 2)},
                     {9, far, pages(9, far, 1)},
                     {9, 0x7fff12345000, pages(9, 0x7fff12345000, 1)}})
                  .ok());
  expect_page(9, boundary - kPage, pages(9, boundary - kPage, 1));
  expect_page(9, boundary, pages(9, boundary, 1));
  expect_page(9, far, pages(9, far, 1));
  expect_page(9, 0x7fff12345000, pages(9, 0x7fff12345000, 1));
}

TEST_F(PageCacheTest, LongRunIsSplitIntoEventsAndReassembled) {
  const uint64_t at = 0x7fff00000000;
  ASSERT_TRUE(round({{5, at, pages(5, at, 300)}}).ok());
  EXPECT_EQ(cache_->pages_received(), 300u);
  expect_page(5, at, pages(5, at, 1));
  expect_page(5, at + 299 * kPage, pages(5, at + 299 * kPage, 1));
}

TEST_F(PageCacheTest, RoundWithoutEndEventFails) {
  BulkSender out(&ch_);
  std::string ev = event_header(5, 1);
  append_u64(&ev, 0x1000);
  ASSERT_TRUE(out.add(ev + pages(5, 0x1000, 1)).ok());
  ASSERT_TRUE(out.flush().ok());
  EXPECT_FALSE(cache_->receive(&ch_, migration::PageRound{0, 1}).ok());
}

// Sends one raw page event and the end event, and returns what receive() says.
Status receive_event(PageCache* cache, MemoryChannel* ch, const std::string& ev) {
  BulkSender out(ch);
  EXPECT_TRUE(out.add(ev).ok());
  std::string end = event_header(0, 0);
  append_u64(&end, 0);
  EXPECT_TRUE(out.add(end).ok());
  EXPECT_TRUE(out.flush().ok());
  return cache->receive(ch, migration::PageRound{0, 1});
}

TEST_F(PageCacheTest, MalformedPageEventsAreCorruption) {
  std::string unaligned = event_header(5, 1);
  append_u64(&unaligned, 0x1001);
  unaligned += std::string(kPage, 'x');

  std::string short_data = event_header(5, 2);  // announces 2 pages, carries 1
  append_u64(&short_data, 0x1000);
  short_data += std::string(kPage, 'x');

  std::string no_vaddr = event_header(5, 0);  // 8 bytes only

  std::string negative_pid = event_header(0xffffffffu, 1);
  append_u64(&negative_pid, 0x1000);
  negative_pid += std::string(kPage, 'x');

  for (const std::string& ev : {unaligned, short_data, no_vaddr, negative_pid}) {
    MemoryChannel ch;
    Status s = receive_event(&*cache_, &ch, ev);
    EXPECT_TRUE(s.is_corruption()) << s.to_string();
  }
  EXPECT_EQ(cache_->pages_received(), 0u);
}

TEST_F(PageCacheTest, FlippedByteInPageSegmentIsCorruption) {
  PageSender out(&ch_);
  ASSERT_TRUE(out.add(3, 0x7fff12345000, pages(3, 0x7fff12345000, 4)).ok());
  ASSERT_TRUE(out.finish().ok());
  ch_.raw[ch_.raw.size() - 20] ^= 0x01;
  Status s = cache_->receive(&ch_, migration::PageRound{0, 4});
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  Status r;
  read(&*cache_, 3, 0x7fff12345000, &r);
  EXPECT_EQ(r.code(), Status::Code::kNotFound) << r.to_string();
}

}  // namespace
}  // namespace relive::transfer
