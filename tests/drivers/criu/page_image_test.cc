// Decoding and rebuilding CRIU page images on synthetic images, including corrupt ones. The
// round trip against a real CRIU dump is tests/dirty/criu_page_image_test.cc.
#include "drivers/criu/page_image.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <map>
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

struct E {
  uint64_t vaddr;
  uint32_t nr_pages;
  uint32_t flags;
};

std::string pagemap(uint32_t pages_id, const std::vector<E>& entries) {
  std::string img = u32(0x54564319) + u32(0x56084025) + object(field(1, pages_id));
  for (const E& e : entries)
    img += object(field(1, e.vaddr) + field(2, e.nr_pages) + field(4, e.flags));
  return img;
}

// A page whose every byte says which page it is.
std::string page_for(uint64_t vaddr) {
  return std::string(kImagePageSize, static_cast<char>(vaddr >> 12));
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/relive-page-image-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { (void)remove_tree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::vector<E> kEntries = {{0x10000, 2, kPePresent},
                                 {0x20000, 3, kPeParent},
                                 {0x30000, 1, kPePresent | kPeLazy},
                                 {0x40000, 4, kPePresent}};

TEST(PageImage, DecodesEveryEntry) {
  auto img = decode_pagemap_image(pagemap(7, kEntries));
  ASSERT_TRUE(img.ok()) << img.status().to_string();
  EXPECT_EQ(img->pages_id, 7u);
  ASSERT_EQ(img->entries.size(), 4u);
  EXPECT_EQ(img->entries[1].vaddr, 0x20000u);
  EXPECT_EQ(img->entries[1].nr_pages, 3u);
  EXPECT_EQ(img->entries[1].flags, kPeParent);
  EXPECT_FALSE(img->entries[1].present());
  EXPECT_TRUE(img->entries[2].present());
  EXPECT_EQ(present_ranges(*img),
            (std::vector<VaddrRange>{{0x10000, 2}, {0x30000, 1}, {0x40000, 4}}));
}

TEST(PageImage, RejectsTruncationsWithCorruption) {
  std::string img = pagemap(1, kEntries);
  for (size_t n = 0; n < img.size(); ++n) {
    auto got = decode_pagemap_image(img.substr(0, n));
    if (!got.ok())
      EXPECT_TRUE(got.status().is_corruption()) << n << got.status().to_string();
    else
      EXPECT_LT(got->entries.size(), 4u) << n;  // cut between two entries
  }
}

TEST(PageImage, RejectsBadEntries) {
  auto expect_corrupt = [](const std::string& img) {
    auto got = decode_pagemap_image(img);
    ASSERT_FALSE(got.ok());
    EXPECT_TRUE(got.status().is_corruption()) << got.status().to_string();
  };
  expect_corrupt(pagemap(1, {{0x10001, 1, kPePresent}}));                   // misaligned
  expect_corrupt(pagemap(1, {{0xfffffffffffff000, 2, kPePresent}}));        // wraps around
  expect_corrupt(u32(0x54564319) + u32(0x11111111) + object(field(1, 1)));  // wrong magic
  std::string head = u32(0x54564319) + u32(0x56084025) + object(field(1, 1));
  expect_corrupt(head + object(field(2, 5)));                                      // no vaddr
  expect_corrupt(head + object(field(1, 0x10000) + field(2, uint64_t{1} << 32)));  // not a u32
  expect_corrupt(head + object("\x08\xff\xff"));  // varint runs off the end
  expect_corrupt(head + u32(1000) + "abc");       // length beyond the image
  expect_corrupt(u32(0x54564319) + u32(0x56084025) + object(field(2, 1)));  // head without id
}

PagemapEntry entry(uint64_t vaddr, uint64_t nr_pages, uint32_t flags) {
  return {.vaddr = vaddr, .nr_pages = nr_pages, .has_flags = true, .flags = flags};
}

TEST(PageImage, EncodeMatchesAHandBuiltImage) {
  PagemapImage image{7, {}};
  for (const E& e : kEntries) image.entries.push_back(entry(e.vaddr, e.nr_pages, e.flags));
  EXPECT_EQ(encode_pagemap_image(image), pagemap(7, kEntries));
  // Old-style entries: in_parent only when true, no flags.
  std::string head = u32(0x54564319) + u32(0x56084025) + object(field(1, 3));
  image = {3,
           {{.vaddr = 0x1000, .nr_pages = 1}, {.vaddr = 0x2000, .nr_pages = 2, .in_parent = true}}};
  EXPECT_EQ(encode_pagemap_image(image), head + object(field(1, 0x1000) + field(2, 1)) +
                                             object(field(1, 0x2000) + field(2, 2) + field(3, 1)));
}

TEST(PageImage, EncodeDecodeRoundTrips) {
  const std::vector<PagemapImage> images = {
      {1, {}},
      {2, {entry(0x10000, 2, kPePresent), entry(0x20000, 3, kPeParent)}},
      {3,
       {{.vaddr = 0x1000, .nr_pages = 1},
        {.vaddr = 0x2000, .nr_pages = 4, .in_parent = true},
        {.vaddr = 0x9000,
         .nr_pages = 1,
         .in_parent = true,
         .has_flags = true,
         .flags = kPeParent}}},
      {UINT32_MAX,
       {entry(0x7ffffffde000, 33, kPePresent | kPeLazy), entry(0x100000000, UINT32_MAX, 0)}},
  };
  for (const PagemapImage& image : images) {
    std::string bytes = encode_pagemap_image(image);
    auto decoded = decode_pagemap_image(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
    EXPECT_EQ(*decoded, image) << image.pages_id;
    EXPECT_EQ(encode_pagemap_image(*decoded), bytes) << image.pages_id;
  }
  std::string theirs = pagemap(9, kEntries);
  EXPECT_EQ(encode_pagemap_image(*decode_pagemap_image(theirs)), theirs);
}

// A CRIU 4.1.1 dump of a small process: 12 entries, 27 pages, anonymous ones present and lazy.
TEST(PageImage, ReencodesAGoldenCriuImageByteForByte) {
  auto bytes = read_file(RELIVE_SOURCE_DIR "/tests/data/golden/criu_4.1.1/pagemap.img");
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  auto image = decode_pagemap_image(*bytes);
  ASSERT_TRUE(image.ok()) << image.status().to_string();
  ASSERT_EQ(image->entries.size(), 12u);
  EXPECT_EQ(image->entries[0], entry(0x55dad9508000, 1, kPePresent));
  EXPECT_EQ(image->entries[11], entry(0x7ffe457e4000, 2, kPePresent | kPeLazy));
  EXPECT_EQ(encode_pagemap_image(*image), *bytes);
  auto same = with_present_pages(*image, {});
  ASSERT_TRUE(same.ok()) << same.status().to_string();
  EXPECT_EQ(same->entries.size(), 12u);
  EXPECT_EQ(present_ranges(*same), present_ranges(*image));
}

// Present base entries, kept as they are; runs of extra pages between them become entries.
const PagemapImage kBase{
    4,
    {entry(0x10000, 2, kPePresent), entry(0x20000, 3, kPePresent), entry(0x40000, 4, kPePresent)}};

std::vector<PagemapEntry> with_extra(const std::vector<VaddrRange>& extra,
                                     const PagemapImage& base = kBase) {
  auto got = with_present_pages(base, extra);
  EXPECT_TRUE(got.ok()) << got.status().to_string();
  if (!got.ok()) return {};
  EXPECT_EQ(got->pages_id, base.pages_id);
  return got->entries;
}

TEST(PageImage, WithPresentPagesAddsOnlyPagesTheBaseLacks) {
  EXPECT_EQ(with_extra({}), kBase.entries);
  EXPECT_EQ(with_extra({{0x11000, 1}, {0x20000, 3}, {0x41000, 2}}), kBase.entries);  // inside
  EXPECT_EQ(with_extra({{0x12000, 2}}),                                              // adjacent
            (std::vector<PagemapEntry>{entry(0x10000, 2, kPePresent), entry(0x12000, 2, kPePresent),
                                       kBase.entries[1], kBase.entries[2]}));
  EXPECT_EQ(
      with_extra({{0x1f000, 6}}),  // overlapping both ends of an entry
      (std::vector<PagemapEntry>{kBase.entries[0], entry(0x1f000, 1, kPePresent), kBase.entries[1],
                                 entry(0x23000, 2, kPePresent), kBase.entries[2]}));
  EXPECT_EQ(
      with_extra({{0x90000, 1}, {0x1000, 2}, {0x2000, 2}, {0x90000, 1}}),  // disjoint
      (std::vector<PagemapEntry>{entry(0x1000, 3, kPePresent), kBase.entries[0], kBase.entries[1],
                                 kBase.entries[2], entry(0x90000, 1, kPePresent)}));
}

TEST(PageImage, WithPresentPagesSortsAndMarksTheBaseEntriesPresent) {
  // CRIU marks anonymous pages present and lazy; old images carry no flags.
  PagemapImage base{1,
                    {{.vaddr = 0x50000, .nr_pages = 1},
                     entry(0x40000, 1, kPePresent | kPeLazy),
                     entry(0x30000, 4, kPePresent),
                     entry(0x32000, 4, kPePresent)}};  // overlaps the one before: merged
  EXPECT_EQ(
      with_extra({{0x51000, 1}}, base),
      (std::vector<PagemapEntry>{entry(0x30000, 6, kPePresent), entry(0x40000, 1, kPePresent),
                                 entry(0x50000, 1, kPePresent), entry(0x51000, 1, kPePresent)}));
  auto got = with_present_pages(base, {{0x60000, 3}});
  ASSERT_TRUE(got.ok());
  auto decoded = decode_pagemap_image(encode_pagemap_image(*got));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(present_ranges(*decoded),
            (std::vector<VaddrRange>{{0x30000, 6}, {0x40000, 1}, {0x50000, 1}, {0x60000, 3}}));
}

TEST(PageImage, WithPresentPagesRefusesPagesNotInItsPagesImage) {
  for (const PagemapEntry& e :
       {entry(0x20000, 1, kPeParent), entry(0x20000, 1, kPePresent | kPeParent),
        entry(0x20000, 1, kPeLazy),
        PagemapEntry{.vaddr = 0x20000, .nr_pages = 1, .in_parent = true}}) {
    PagemapImage base = kBase;
    base.entries.push_back(e);
    auto got = with_present_pages(base, {{0x1000, 1}});
    ASSERT_FALSE(got.ok());
    EXPECT_TRUE(got.status().is_unsupported()) << got.status().to_string();
  }
  auto got = with_present_pages(kBase, {{0x1001, 1}});
  EXPECT_EQ(got.status().code(), Status::Code::kInvalidArgument) << got.status().to_string();
  got = with_present_pages(kBase, {{0xfffffffffffff000, 2}});
  EXPECT_EQ(got.status().code(), Status::Code::kInvalidArgument) << got.status().to_string();
}

TEST(PageImage, SubtractLeavesWhatIsNotClean) {
  std::vector<VaddrRange> present{{0x10000, 10}, {0x40000, 4}};
  EXPECT_EQ(subtract(present, {}), present);
  EXPECT_EQ(subtract(present, {{0x10000, 10}, {0x40000, 4}}), std::vector<VaddrRange>{});
  EXPECT_EQ(subtract(present, {{0x12000, 2}, {0x16000, 1}, {0x3f000, 2}}),
            (std::vector<VaddrRange>{{0x10000, 2}, {0x14000, 2}, {0x17000, 3}, {0x41000, 3}}));
  // Unsorted, overlapping clean ranges.
  EXPECT_EQ(subtract(present, {{0x15000, 20}, {0x11000, 5}}),
            (std::vector<VaddrRange>{{0x10000, 1}, {0x40000, 4}}));
}

TEST(PageImage, RebuildWritesPresentPagesInPagemapOrderAndExtractReadsThemBack) {
  TempDir dir;
  std::string pm = pagemap(3, kEntries);
  ASSERT_TRUE(write_file_atomic(dir.path() + "/pagemap-42.img", pm).ok());
  std::vector<uint64_t> asked;
  Status st = rebuild_pages_image(
      pm,
      [&](uint64_t vaddr, std::span<char> page) {
        asked.push_back(vaddr);
        std::string p = page_for(vaddr);
        std::memcpy(page.data(), p.data(), page.size());
        return Status::Ok();
      },
      dir.path() + "/pages-3.img");
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(asked,
            (std::vector<uint64_t>{0x10000, 0x11000, 0x30000, 0x40000, 0x41000, 0x42000, 0x43000}));
  auto file = read_file(dir.path() + "/pages-3.img");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->size(), 7 * kImagePageSize);
  EXPECT_EQ(file->substr(2 * kImagePageSize, kImagePageSize), page_for(0x30000));

  std::map<uint64_t, std::string> got;
  std::vector<VaddrRange> absent;
  st = extract_pages(
      dir.path(), 42, {{0x11000, 1}, {0x20000, 1}, {0x41000, 8}},
      [&](uint64_t vaddr, std::string_view bytes) {
        for (size_t i = 0; i < bytes.size(); i += kImagePageSize)
          got[vaddr + i] = std::string(bytes.substr(i, kImagePageSize));
        return Status::Ok();
      },
      &absent);
  ASSERT_TRUE(st.ok()) << st.to_string();
  ASSERT_EQ(got.size(), 4u);
  for (const auto& [vaddr, bytes] : got) EXPECT_EQ(bytes, page_for(vaddr)) << std::hex << vaddr;
  EXPECT_EQ(absent, (std::vector<VaddrRange>{{0x20000, 1}, {0x44000, 5}}));
}

TEST(PageImage, RebuildFailsOnAMissingPageAndLeavesNoFile) {
  TempDir dir;
  std::string out = dir.path() + "/pages-1.img";
  Status st = rebuild_pages_image(
      pagemap(1, kEntries),
      [](uint64_t vaddr, std::span<char>) {
        return vaddr == 0x41000 ? Status::NotFound("not shipped") : Status::Ok();
      },
      out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kNotFound);
  EXPECT_NE(st.message().find("0x41000"), std::string::npos) << st.to_string();
  EXPECT_NE(::access(out.c_str(), F_OK), 0);
  EXPECT_NE(::access((out + ".tmp").c_str(), F_OK), 0);
  st = rebuild_pages_image(
      "garbage", [](uint64_t, std::span<char>) { return Status::Ok(); }, out);
  EXPECT_TRUE(st.is_corruption()) << st.to_string();
}

TEST(PageImage, ExtractFromTruncatedPagesImageIsCorruption) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.path() + "/pagemap-5.img", pagemap(9, kEntries)).ok());
  ASSERT_TRUE(
      write_file_atomic(dir.path() + "/pages-9.img", std::string(3 * kImagePageSize, 'x')).ok());
  Status st = extract_pages(dir.path(), 5, {{0x40000, 4}},
                            [](uint64_t, std::string_view) { return Status::Ok(); });
  EXPECT_TRUE(st.is_corruption()) << st.to_string();
  st = extract_pages(dir.path(), 6, {{0x40000, 4}},
                     [](uint64_t, std::string_view) { return Status::Ok(); });
  EXPECT_FALSE(st.ok());
}

}  // namespace
}  // namespace relive::criu
