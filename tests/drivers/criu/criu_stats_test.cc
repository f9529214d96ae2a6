#include "drivers/criu/criu_stats.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "common/file_util.h"

namespace relive::criu {
namespace {

// Written by CRIU 4.1.1 on this machine (dump and restore of a small counter program).
const std::string kDumpImage(
    "\x40\x59\x10\x55\x06\x33\x09\x57\x21\x00\x00\x00\x0a\x1f\x08\xe6\x02\x10\xfb\x44\x18\xbc"
    "\x06\x20\x78\x28\x27\x30\x00\x38\x1a\x40\x00\x48\x00\x50\x06\x58\x06\x60\x00\x68\x00\x70\x00",
    45);
const std::string kRestoreImage(
    "\x40\x59\x10\x55\x06\x33\x09\x57\x0d\x00\x00\x00\x12\x0b\x08\x00\x10\x00\x18\x04\x20\xcd"
    "\x69\x28\x1a",
    25);

// Builds an image around a StatsEntry body, with a consistent length field.
std::string image_with_body(const std::string& body) {
  std::string img = kDumpImage.substr(0, 8);
  uint32_t len = static_cast<uint32_t>(body.size());
  img.append(reinterpret_cast<const char*>(&len), 4);
  return img + body;
}

TEST(CriuStats, DecodesARealDumpImage) {
  CriuStats s;
  ASSERT_TRUE(parse_stats_image(kDumpImage, &s).ok());
  EXPECT_DOUBLE_EQ(s.freezing_ms, 0.358);
  EXPECT_DOUBLE_EQ(s.frozen_ms, 8.827);
  EXPECT_DOUBLE_EQ(s.memdump_ms, 0.828);
  EXPECT_DOUBLE_EQ(s.memwrite_ms, 0.120);
  EXPECT_EQ(s.pages_scanned, 39u);
  EXPECT_EQ(s.pages_written, 26u);
  EXPECT_EQ(s.restore_ms, -1);
}

TEST(CriuStats, DecodesARealRestoreImage) {
  CriuStats s;
  ASSERT_TRUE(parse_stats_image(kRestoreImage, &s).ok());
  EXPECT_DOUBLE_EQ(s.restore_ms, 13.517);
  EXPECT_DOUBLE_EQ(s.forking_ms, 0.004);
  EXPECT_EQ(s.pages_restored, 26u);
  EXPECT_EQ(s.frozen_ms, -1);
}

TEST(CriuStats, RejectsEveryTruncation) {
  for (size_t n = 0; n < kDumpImage.size(); ++n) {
    CriuStats s;
    Status st = parse_stats_image(kDumpImage.substr(0, n), &s);
    EXPECT_TRUE(st.is_corruption()) << n << ": " << st.to_string();
    EXPECT_EQ(s.frozen_ms, -1) << "a failed parse must not change the stats";
  }
}

TEST(CriuStats, RejectsBadMagic) {
  std::string img = kDumpImage;
  img[4] ^= 1;
  CriuStats s;
  Status st = parse_stats_image(img, &s);
  EXPECT_TRUE(st.is_corruption());
  EXPECT_NE(st.message().find("magic"), std::string::npos);
}

TEST(CriuStats, RejectsNestedLengthPastTheEnd) {
  std::string img = kDumpImage;
  img[13] = 0x2f;  // the dump entry now claims 47 bytes; 31 are there
  CriuStats s;
  EXPECT_TRUE(parse_stats_image(img, &s).is_corruption());
}

TEST(CriuStats, RejectsOverlongVarint) {
  CriuStats s;
  std::string body = "\x0a\x0b\x08" + std::string(10, '\xff');
  body[1] = 11;
  EXPECT_TRUE(parse_stats_image(image_with_body(body), &s).is_corruption());
}

TEST(CriuStats, SkipsFieldsItDoesNotKnow) {
  // field 9 fixed32, field 10 fixed64, field 11 bytes, then the real dump entry
  std::string body("\x4d\x01\x02\x03\x04\x51\x01\x02\x03\x04\x05\x06\x07\x08\x5a\x02hi", 18);
  body += kDumpImage.substr(12);
  CriuStats s;
  ASSERT_TRUE(parse_stats_image(image_with_body(body), &s).ok());
  EXPECT_DOUBLE_EQ(s.frozen_ms, 8.827);
}

TEST(CriuStats, SurvivesEverySingleByteValue) {
  for (size_t at = 0; at < kDumpImage.size(); ++at) {
    for (int v = 0; v < 256; ++v) {
      std::string img = kDumpImage;
      img[at] = static_cast<char>(v);
      CriuStats s;
      Status st = parse_stats_image(img, &s);
      EXPECT_TRUE(st.ok() || st.is_corruption());
    }
  }
}

TEST(CriuStats, ReadStatsMergesBothImages) {
  char tmpl[] = "/tmp/relive-criu-stats-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  ASSERT_TRUE(write_file_atomic(dir + "/stats-dump", kDumpImage).ok());
  ASSERT_TRUE(write_file_atomic(dir + "/stats-restore", kRestoreImage).ok());
  CriuStats s = read_stats(dir);
  EXPECT_DOUBLE_EQ(s.frozen_ms, 8.827);
  EXPECT_DOUBLE_EQ(s.restore_ms, 13.517);
  ASSERT_TRUE(write_file_atomic(dir + "/stats-dump", "garbage").ok());
  s = read_stats(dir);
  EXPECT_EQ(s.frozen_ms, -1);
  EXPECT_DOUBLE_EQ(s.restore_ms, 13.517);
  EXPECT_EQ(read_stats(dir + "/missing").frozen_ms, -1);
  ASSERT_TRUE(remove_tree(dir).ok());
}

}  // namespace
}  // namespace relive::criu
