#include "drivers/criu/image_check.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "common/file_util.h"
#include "drivers/criu/pb_writer.h"

namespace relive::criu {
namespace {

std::string varint(uint64_t v) {
  std::string out;
  pb::put_varint(&out, v);
  return out;
}
std::string field(uint32_t number, uint64_t value) { return varint(number << 3) + varint(value); }
std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string object(const std::string& pb) { return u32(static_cast<uint32_t>(pb.size())) + pb; }

// A pagemap image as CRIU 4.1 writes it: magics, head {pages_id}, entries {vaddr, nr_pages, flags}.
std::string pagemap(uint32_t pages_id, const std::vector<std::pair<uint32_t, uint32_t>>& entries) {
  std::string img = u32(0x54564319) + u32(0x56084025) + object(field(1, pages_id));
  uint64_t vaddr = 0x7f0000000000;
  for (auto [nr_pages, flags] : entries) {
    img += object(field(1, vaddr) + field(2, nr_pages) + field(4, flags));
    vaddr += uint64_t{nr_pages} << 12;
  }
  return img;
}

constexpr uint32_t kPresent = 4, kParent = 1, kLazyPresent = 6;

TEST(PagemapImage, CountsOnlyPagesStoredInThisImage) {
  auto s = parse_pagemap_image(pagemap(3, {{2, kPresent}, {5, kParent}, {7, kLazyPresent}}));
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->pages_id, 3u);
  EXPECT_EQ(s->present_pages, 9u);
}

TEST(PagemapImage, OldEntriesWithoutFlagsUseInParent) {
  std::string img = u32(0x56084025) + object(field(1, 1)) +  // no common magic: old format
                    object(field(1, 0x1000) + field(2, 4)) +
                    object(field(1, 0x9000) + field(2, 8) + field(3, 1));
  auto s = parse_pagemap_image(img);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->present_pages, 4u);
}

TEST(PagemapImage, RejectsEveryTruncationInsideAnObject) {
  std::string img = pagemap(1, {{2, kPresent}, {3, kPresent}});
  for (size_t n = 0; n < img.size(); ++n) {
    auto s = parse_pagemap_image(img.substr(0, n));
    // Cutting exactly between two entries leaves a valid, shorter pagemap.
    if (s.ok()) continue;
    EXPECT_TRUE(s.status().is_corruption()) << n;
  }
  EXPECT_FALSE(parse_pagemap_image(img.substr(0, 9)).ok());
}

TEST(PagemapImage, RejectsBadMagicAndMissingHead) {
  EXPECT_TRUE(parse_pagemap_image("garbage!").status().is_corruption());
  EXPECT_TRUE(
      parse_pagemap_image(u32(0x54564319) + u32(0x56084025) + object("")).status().is_corruption());
}

TEST(PagemapImage, SurvivesEverySingleByteValue) {
  std::string img = pagemap(1, {{2, kPresent}, {3, kLazyPresent}});
  for (size_t at = 0; at < img.size(); ++at) {
    for (int v = 0; v < 256; ++v) {
      std::string bad = img;
      bad[at] = static_cast<char>(v);
      auto s = parse_pagemap_image(bad);
      EXPECT_TRUE(s.ok() || s.status().is_corruption());
    }
  }
}

class PagesCompleteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relive-criu-images-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)remove_tree(dir_); }
  void put(const std::string& name, const std::string& data) {
    ASSERT_TRUE(write_file_atomic(dir_ + "/" + name, data).ok());
  }
  std::string dir_;
  const size_t page_ = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
};

TEST_F(PagesCompleteTest, AcceptsCompleteImages) {
  put("pagemap-100.img", pagemap(1, {{2, kPresent}, {1, kParent}}));
  put("pages-1.img", std::string(2 * page_, 'p'));
  put("pagemap-shmem-7.img", pagemap(2, {{1, kPresent}}));
  put("pages-2.img", std::string(page_, 's'));
  EXPECT_TRUE(check_pages_complete(dir_).ok());
}

TEST_F(PagesCompleteTest, RejectsTruncatedPages) {
  put("pagemap-100.img", pagemap(1, {{3, kPresent}}));
  put("pages-1.img", std::string(2 * page_, 'p'));
  Status st = check_pages_complete(dir_);
  EXPECT_TRUE(st.is_corruption());
  EXPECT_NE(st.message().find("pages-1.img holds " + std::to_string(2 * page_) + " bytes"),
            std::string::npos)
      << st.message();
}

TEST_F(PagesCompleteTest, RejectsMissingPagesFile) {
  put("pagemap-100.img", pagemap(4, {{1, kPresent}}));
  EXPECT_TRUE(check_pages_complete(dir_).is_corruption());
}

TEST_F(PagesCompleteTest, ReportsWhichPagemapIsCorrupt) {
  put("pagemap-100.img", "junk");
  Status st = check_pages_complete(dir_);
  EXPECT_TRUE(st.is_corruption());
  EXPECT_NE(st.message().find("pagemap-100.img"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace relive::criu
