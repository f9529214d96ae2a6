// Decoding and patching CRIU tcp-stream images built by hand, including corrupt ones. Against a
// real CRIU dump: tests/ha/tcp_stream_capture_test.cc.
#include "drivers/criu/tcp_stream_image.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "drivers/criu/pb_writer.h"

namespace relive::criu {
namespace {

std::string varint(uint64_t v) {
  std::string out;
  pb::put_varint(&out, v);
  return out;
}
std::string key(uint32_t number, uint32_t type) { return varint(uint64_t{number} << 3 | type); }
std::string field(uint32_t number, uint64_t value) { return key(number, 0) + varint(value); }
std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string header() { return u32(0x54564319) + u32(kTcpStreamMagic); }
std::string image(const std::string& entry, const std::string& queues) {
  return header() + u32(static_cast<uint32_t>(entry.size())) + entry + queues;
}

// The required fields, as CRIU writes them: inq "abc", outq "hello" (2 unsent), timestamps on.
std::string required_fields() {
  return field(1, 3) + field(2, 1000) + field(3, 5) + field(4, 2000) + field(5, 0x7) + field(6, 7) +
         field(7, 65483);
}
std::string base_entry() {
  return required_fields() + field(8, 7) + field(9, 123456) + field(12, 2) + field(13, 100) +
         field(14, 65536) + field(15, 65536) + field(16, 43690) + field(17, 1000);
}
std::string base_image() { return image(base_entry(), "abchello"); }

TcpStreamState later_state() {
  TcpStreamState s;
  s.opt_mask = 0x7;
  s.inq_seq = 1010;
  s.outq_seq = 2100;
  s.unsq_len = 1;
  s.timestamp = 777777;
  s.window = TcpWindow{300, 1024, 70000, 40000, 1008};
  s.inq = "abc0123456789";
  s.outq = "world";
  return s;
}

TEST(TcpStreamImage, DecodesFieldsAndQueues) {
  auto img = decode_tcp_stream_image(base_image());
  ASSERT_TRUE(img.ok()) << img.status().to_string();
  EXPECT_EQ(img->stream.inq_seq, 1000u);
  EXPECT_EQ(img->stream.outq_seq, 2000u);
  EXPECT_EQ(img->stream.opt_mask, 0x7u);
  EXPECT_EQ(img->stream.unsq_len, 2u);
  EXPECT_EQ(img->stream.timestamp, 123456u);
  ASSERT_TRUE(img->stream.window.has_value());
  EXPECT_EQ(*img->stream.window, (TcpWindow{100, 65536, 65536, 43690, 1000}));
  EXPECT_EQ(img->stream.inq, "abc");
  EXPECT_EQ(img->stream.outq, "hello");
  EXPECT_EQ(img->snd_wscale, 7u);
  EXPECT_EQ(img->mss_clamp, 65483u);
  EXPECT_EQ(img->rcv_wscale, 7u);
  EXPECT_TRUE(img->has_unsq_len);
  EXPECT_FALSE(img->cork.has_value());
}

TEST(TcpStreamImage, DecodesImageWithoutCommonMagic) {
  std::string entry = required_fields();
  auto img = decode_tcp_stream_image(u32(kTcpStreamMagic) + u32(entry.size()) + entry + "abchello");
  ASSERT_TRUE(img.ok()) << img.status().to_string();
  EXPECT_FALSE(img->has_unsq_len);
  EXPECT_FALSE(img->stream.window.has_value());
}

TEST(TcpStreamImage, EncodeDecodeRoundTrip) {
  TcpStreamImage img;
  img.stream = later_state();
  img.snd_wscale = 7;
  img.mss_clamp = 1460;
  img.rcv_wscale = 9;
  img.nodelay = true;
  img.has_unsq_len = true;
  std::string bytes = encode_tcp_stream_image(img);
  auto back = decode_tcp_stream_image(bytes);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(encode_tcp_stream_image(*back), bytes);
  EXPECT_EQ(back->stream.inq, img.stream.inq);
  EXPECT_EQ(back->nodelay, true);
  // CRIU writes the fields in number order, as this encoder does; so a patch keeps its bytes.
  auto same = patch_tcp_stream_image(bytes, img.stream);
  ASSERT_TRUE(same.ok()) << same.status().to_string();
  EXPECT_EQ(*same, bytes);
}

TEST(TcpStreamImage, PatchReplacesDynamicFields) {
  TcpStreamState now = later_state();
  auto patched = patch_tcp_stream_image(base_image(), now);
  ASSERT_TRUE(patched.ok()) << patched.status().to_string();
  auto img = decode_tcp_stream_image(*patched);
  ASSERT_TRUE(img.ok()) << img.status().to_string();
  EXPECT_EQ(img->stream.inq_seq, now.inq_seq);
  EXPECT_EQ(img->stream.outq_seq, now.outq_seq);
  EXPECT_EQ(img->stream.unsq_len, now.unsq_len);
  EXPECT_EQ(img->stream.timestamp, now.timestamp);
  EXPECT_EQ(img->stream.window, now.window);
  EXPECT_EQ(img->stream.inq, now.inq);
  EXPECT_EQ(img->stream.outq, now.outq);
  EXPECT_EQ(img->snd_wscale, 7u);
  EXPECT_EQ(img->mss_clamp, 65483u);
  EXPECT_EQ(img->rcv_wscale, 7u);
}

TEST(TcpStreamImage, PatchKeepsOtherFieldsByteExact) {
  // Unknown fields of every wire type, a non-minimal varint and the deprecated bools, between
  // the known ones: all must come out as they went in, in place.
  std::string odd_mss = key(7, 0) + std::string("\xcb\xff\x83\x80\x00", 5);  // 65483, padded
  std::string unknown = key(40, 2) + varint(3) + "xyz" + key(41, 5) + u32(0xdeadbeef) + key(42, 1) +
                        u32(1) + u32(2) + field(43, 99);
  std::string base = field(1, 3) + field(2, 1000) + unknown + field(3, 5) + field(4, 2000) +
                     field(5, 0x7) + field(6, 7) + odd_mss + field(8, 7) + field(9, 5) +
                     field(10, 1) + field(11, 0) + field(12, 2) + field(50, 1);
  TcpStreamState now = later_state();
  auto patched = patch_tcp_stream_image(image(base, "abchello"), now);
  ASSERT_TRUE(patched.ok()) << patched.status().to_string();
  std::string want = field(1, 13) + field(2, 1010) + unknown + field(3, 5) + field(4, 2100) +
                     field(5, 0x7) + field(6, 7) + odd_mss + field(8, 7) + field(9, 777777) +
                     field(10, 1) + field(11, 0) + field(12, 1) + field(50, 1) +
                     // The base had no window: appended in number order.
                     field(13, 300) + field(14, 1024) + field(15, 70000) + field(16, 40000) +
                     field(17, 1008);
  EXPECT_EQ(*patched, image(want, now.inq + now.outq));
}

TEST(TcpStreamImage, PatchDropsWhatNowLacksAndDuplicates) {
  std::string base = base_entry() + field(2, 999);  // a duplicate: the last one counts
  auto img = decode_tcp_stream_image(image(base, "abchello"));
  ASSERT_TRUE(img.ok());
  EXPECT_EQ(img->stream.inq_seq, 999u);
  TcpStreamState now = later_state();
  now.window.reset();  // a kernel without TCP_REPAIR_WINDOW
  now.opt_mask = 0x7;
  auto patched = patch_tcp_stream_image(image(base, "abchello"), now);
  ASSERT_TRUE(patched.ok()) << patched.status().to_string();
  std::string want = field(1, 13) + field(2, 1010) + field(3, 5) + field(4, 2100) + field(5, 0x7) +
                     field(6, 7) + field(7, 65483) + field(8, 7) + field(9, 777777) + field(12, 1);
  EXPECT_EQ(*patched, image(want, now.inq + now.outq));
}

TEST(TcpStreamImage, PatchRejectsStateOfAnotherConnection) {
  TcpStreamState now = later_state();
  now.opt_mask = 0x5;
  EXPECT_EQ(patch_tcp_stream_image(base_image(), now).status().code(),
            Status::Code::kInvalidArgument);
  now = later_state();
  now.timestamp.reset();
  EXPECT_EQ(patch_tcp_stream_image(base_image(), now).status().code(),
            Status::Code::kInvalidArgument);
  now = later_state();
  now.unsq_len = 6;
  EXPECT_EQ(patch_tcp_stream_image(base_image(), now).status().code(),
            Status::Code::kInvalidArgument);
}

void expect_corrupt(const std::string& bytes, const char* what) {
  auto img = decode_tcp_stream_image(bytes);
  EXPECT_TRUE(!img.ok() && img.status().is_corruption()) << what;
  auto patched = patch_tcp_stream_image(bytes, later_state());
  EXPECT_TRUE(!patched.ok() && patched.status().is_corruption()) << what;
}

TEST(TcpStreamImage, RejectsCorruptImages) {
  std::string good = base_image();
  expect_corrupt("", "empty");
  expect_corrupt(u32(0x54564319) + u32(0x12345678) + good.substr(8), "bad magic");
  expect_corrupt(header() + u32(1000) + base_entry(), "entry length past the end");
  expect_corrupt(header() + u32(1 << 30), "huge entry length");
  expect_corrupt(image(base_entry(), "abchell"), "queues short");
  expect_corrupt(image(base_entry(), "abchello!"), "trailing bytes");
  std::string no_mss = field(1, 3) + field(2, 1000) + field(3, 5) + field(4, 2000) + field(5, 0x7) +
                       field(6, 7) + field(12, 2);
  expect_corrupt(image(no_mss, "abchello"), "mss_clamp missing");
  expect_corrupt(image(field(1, 3) + std::string("\x90", 1), "abchello"), "truncated varint");
  expect_corrupt(image(base_entry() + key(2, 2) + varint(1) + "x", "abchello"),
                 "known field of the wrong wire type");
  expect_corrupt(image(base_entry() + field(2, uint64_t{1} << 32), "abchello"),
                 "uint32 field too large");
  expect_corrupt(image(base_entry() + key(44, 3), "abchello"), "group");
  expect_corrupt(image(base_entry() + key(44, 2) + varint(50) + "x", "abchello"),
                 "bytes field past the entry");
  expect_corrupt(image(base_entry() + std::string("\x00", 1), "abchello"), "field number 0");
  expect_corrupt(image(base_entry() + field(12, 6), "abchello"), "unsent more than queued");
}

TEST(TcpStreamImage, RejectsEveryTruncation) {
  std::string good = base_image();
  for (size_t n = 0; n < good.size(); ++n) expect_corrupt(good.substr(0, n), "truncated");
}

TEST(TcpStreamImage, SurvivesRandomDamage) {
  std::mt19937 rng(42);
  std::string good = base_image();
  for (int i = 0; i < 20000; ++i) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    (void)decode_tcp_stream_image(bad);
    (void)patch_tcp_stream_image(bad, later_state());
  }
}

}  // namespace
}  // namespace relive::criu
