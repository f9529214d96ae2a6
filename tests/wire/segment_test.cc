#include "wire/segment.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/hash.h"
#include "wire/le_bytes.h"
#include "wire/trace_types.h"

namespace relive::wire {
namespace {

constexpr size_t kVersionAt = 4;
constexpr size_t kFlagsAt = 6;
constexpr size_t kSeqAt = 8;
constexpr size_t kCountAt = 16;
constexpr size_t kRawAt = 20;
constexpr size_t kCompressedAt = 24;
constexpr size_t kPayloadHashAt = 28;
constexpr size_t kHeaderHashAt = 32;

using Events = std::vector<std::string>;

Events sample(int n, size_t size = 40) {
  Events out;
  for (int i = 0; i < n; ++i) out.push_back(std::string(size + i, static_cast<char>('a' + i % 26)));
  return out;
}

void set_le(std::string* s, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}

// Rewrites the header checksum so that a deliberately edited field gets past it.
void fix_header_hash(std::string* frame) {
  set_le(frame, kHeaderHashAt, hash32(std::string_view(*frame).substr(0, kHeaderHashAt)), 4);
}

void fix_payload_hash(std::string* frame) {
  set_le(frame, kPayloadHashAt, hash32(std::string_view(*frame).substr(kSegmentHeaderBytes)), 4);
  fix_header_hash(frame);
}

// Feeds `bytes` to a fresh decoder and returns the first result of next().
Result<std::optional<Events>> decode_one(const std::string& bytes, uint64_t first_seq = 0) {
  SegmentDecoder d(first_seq);
  d.feed(bytes);
  return d.next();
}

Status decode_error(const std::string& bytes) { return decode_one(bytes).status(); }

bool contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

TEST(Segment, RoundTripsOneSegment) {
  Events events = sample(5);
  auto r = decode_one(encode_segment(0, events));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, events);
}

TEST(Segment, RoundTripsEmptySegmentAndShortestEvents) {
  for (const Events& events : {Events{}, Events{"8 bytes!", "12345678"}}) {
    auto r = decode_one(encode_segment(0, events));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(**r, events);
  }
}

TEST(Segment, WritesTheDocumentedHeader) {
  std::string frame = encode_segment(7, sample(3));
  EXPECT_EQ(frame.substr(0, 4), "RLSG");
  EXPECT_EQ(get_u16(frame, kVersionAt), relive::trace::kFormatVersion);
  EXPECT_EQ(get_u16(frame, kFlagsAt), 0);
  EXPECT_EQ(get_u64(frame, kSeqAt), 7u);
  EXPECT_EQ(get_u32(frame, kCountAt), 3u);
  EXPECT_EQ(get_u32(frame, kRawAt), 3 * 4 + 40 + 41 + 42u);
  EXPECT_EQ(get_u32(frame, kCompressedAt), frame.size() - kSegmentHeaderBytes);
}

TEST(SegmentDecoder, DecodesStreamFedByteByByte) {
  std::vector<Events> segments = {sample(3), sample(1, 1000), {}, sample(50, 8)};
  std::string stream;
  for (size_t i = 0; i < segments.size(); ++i) stream += encode_segment(i, segments[i]);
  SegmentDecoder d;
  std::vector<Events> got;
  for (char c : stream) {
    d.feed(std::string_view(&c, 1));
    auto r = d.next();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    if (r->has_value()) got.push_back(std::move(**r));
  }
  EXPECT_EQ(got, segments);
  EXPECT_FALSE(d.has_partial());
  EXPECT_EQ(d.next_sequence(), segments.size());
  EXPECT_EQ(d.stream_offset(), stream.size());
}

TEST(SegmentDecoder, DecodesSeveralFramesFedAtOnce) {
  std::string stream = encode_segment(0, sample(2)) + encode_segment(1, sample(3));
  SegmentDecoder d;
  d.feed(stream);
  EXPECT_EQ(**d.next(), sample(2));
  EXPECT_EQ(**d.next(), sample(3));
  EXPECT_FALSE(d.next()->has_value());
}

TEST(SegmentDecoder, StartsAtAGivenSequence) {
  auto r = decode_one(encode_segment(41, sample(1)), 41);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(**r, sample(1));
}

TEST(SegmentDecoder, WaitsForAWholeFrame) {
  std::string frame = encode_segment(0, sample(4));
  SegmentDecoder d;
  EXPECT_FALSE(d.has_partial());
  d.feed(frame.substr(0, 10));
  EXPECT_TRUE(d.has_partial());
  EXPECT_FALSE(d.next()->has_value());
  d.feed(frame.substr(10, frame.size() - 11));
  EXPECT_TRUE(d.has_partial());
  EXPECT_FALSE(d.next()->has_value());
  d.feed(frame.substr(frame.size() - 1));
  EXPECT_FALSE(d.has_partial());
  EXPECT_EQ(**d.next(), sample(4));
}

TEST(SegmentDecoder, RejectsTruncatedFrame) {
  std::string frame = encode_segment(0, sample(4));
  SegmentDecoder d;
  d.feed(frame.substr(0, frame.size() - 1));
  auto r = d.next();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  EXPECT_TRUE(d.has_partial()) << "the end of a log here means the last frame is cut";
}

TEST(SegmentDecoder, RejectsWrongMagic) {
  std::string frame = encode_segment(0, sample(2));
  frame[0] = 'X';
  Status s = decode_error(frame);
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "magic"));
}

TEST(SegmentDecoder, RejectsFlippedBitInPayload) {
  std::string frame = encode_segment(0, sample(8));
  frame[kSegmentHeaderBytes + 5] ^= 0x20;
  Status s = decode_error(frame);
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "payload checksum"));
}

TEST(SegmentDecoder, RejectsEveryFlippedBitInHeader) {
  const std::string frame = encode_segment(0, sample(8));
  for (size_t bit = 0; bit < kSegmentHeaderBytes * 8; ++bit) {
    std::string bad = frame;
    bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    Status s = decode_error(bad);
    EXPECT_FALSE(s.ok()) << "bit " << bit;
    bool newer = bit / 8 == kVersionAt || bit / 8 == kVersionAt + 1;
    if (!newer) EXPECT_TRUE(s.is_corruption()) << "bit " << bit << ": " << s.to_string();
  }
}

TEST(SegmentDecoder, ReportsFutureVersion) {
  std::string frame = encode_segment(0, sample(2));
  set_le(&frame, kVersionAt, relive::trace::kFormatVersion + 1, 2);
  fix_header_hash(&frame);
  Status s = decode_error(frame);
  ASSERT_EQ(s.code(), Status::Code::kVersionMismatch) << s.to_string();
  EXPECT_TRUE(contains(s, std::to_string(relive::trace::kFormatVersion + 1))) << s.message();
}

TEST(SegmentDecoder, RejectsUnknownFlags) {
  std::string frame = encode_segment(0, sample(2));
  set_le(&frame, kFlagsAt, 0x8000, 2);
  fix_header_hash(&frame);
  EXPECT_TRUE(decode_error(frame).is_corruption());
}

TEST(SegmentDecoder, RejectsAbsurdRawLengthFromHeaderAlone) {
  std::string frame = encode_segment(0, sample(2));
  set_le(&frame, kRawAt, 0xffffffffu, 4);  // 4 GiB claimed
  fix_header_hash(&frame);
  SegmentDecoder d;
  d.feed(frame.substr(0, kSegmentHeaderBytes));  // the payload has not even arrived
  Status s = d.next().status();
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "absurd"));
}

TEST(SegmentDecoder, RejectsAbsurdCompressedLength) {
  std::string frame = encode_segment(0, sample(2));
  set_le(&frame, kCompressedAt, 0xfffffff0u, 4);
  fix_header_hash(&frame);
  EXPECT_TRUE(decode_error(frame.substr(0, kSegmentHeaderBytes)).is_corruption());
}

TEST(SegmentDecoder, RejectsMoreRawBytesThanLz4CanExpandTo) {
  std::string frame = encode_segment(0, sample(2));
  set_le(&frame, kRawAt, 300 * get_u32(frame, kCompressedAt), 4);
  fix_header_hash(&frame);
  Status s = decode_error(frame.substr(0, kSegmentHeaderBytes));
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "absurd")) << s.message();
}

TEST(Segment, HighlyCompressibleSegmentsStillDecode) {
  Events events = {std::string(kMaxEventBytes, '\0')};
  auto r = decode_one(encode_segment(0, events));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(**r, events);
}

TEST(SegmentDecoder, RejectsMoreEventsThanFit) {
  std::string frame = encode_segment(0, sample(2));
  set_le(&frame, kCountAt, get_u32(frame, kRawAt) / 4 + 1, 4);
  fix_header_hash(&frame);
  EXPECT_TRUE(decode_error(frame).is_corruption());
}

TEST(SegmentDecoder, RejectsSequenceGap) {
  SegmentDecoder d;
  d.feed(encode_segment(0, sample(1)) + encode_segment(2, sample(1)));
  ASSERT_TRUE(d.next().ok());
  Status s = d.next().status();
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "sequence number 2, expected 1")) << s.message();
}

TEST(SegmentDecoder, RejectsReplayedSegment) {
  SegmentDecoder d;
  std::string frame = encode_segment(0, sample(1));
  d.feed(frame + frame);
  ASSERT_TRUE(d.next().ok());
  EXPECT_TRUE(d.next().status().is_corruption());
}

TEST(SegmentDecoder, RejectsUndecompressablePayload) {
  std::string frame = encode_segment(0, sample(8));
  for (size_t i = kSegmentHeaderBytes; i < frame.size(); ++i) frame[i] = '\xff';
  fix_payload_hash(&frame);
  Status s = decode_error(frame);
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "LZ4")) << s.message();
}

TEST(SegmentDecoder, RejectsRawLengthMismatch) {
  for (int delta : {-1, +1}) {
    std::string frame = encode_segment(0, sample(8));
    set_le(&frame, kRawAt, get_u32(frame, kRawAt) + delta, 4);
    fix_header_hash(&frame);
    EXPECT_TRUE(decode_error(frame).is_corruption()) << delta;
  }
}

TEST(SegmentDecoder, RejectsEventOverrunningSegment) {
  std::string raw;
  put_u32(&raw, 100);  // claims 100 bytes, 12 follow
  raw += "abcdefghijkl";
  Status s = decode_error(encode_segment_payload(0, 1, raw));
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "overruns"));
}

TEST(SegmentDecoder, RejectsEventTooShortToBeAMessage) {
  std::string raw;
  put_u32(&raw, 0);
  raw += std::string(12, 'p');
  Status s = decode_error(encode_segment_payload(0, 1, raw));
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "too short"));
}

TEST(SegmentDecoder, RejectsStrayBytesAfterEvents) {
  std::string raw;
  append_event_to_payload(&raw, "event one");
  append_event_to_payload(&raw, "event two");
  Status s = decode_error(encode_segment_payload(0, 1, raw));
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "stray"));
}

TEST(SegmentDecoder, ErrorsAreSticky) {
  std::string bad = encode_segment(0, sample(1));
  bad[kSegmentHeaderBytes] ^= 1;
  SegmentDecoder d;
  d.feed(bad);
  ASSERT_TRUE(d.next().status().is_corruption());
  d.feed(encode_segment(0, sample(1)));
  EXPECT_TRUE(d.next().status().is_corruption());
}

TEST(SegmentDecoder, ErrorsNameTheSegmentAndOffset) {
  std::string first = encode_segment(0, sample(1));
  std::string second = encode_segment(1, sample(1));
  second[kSegmentHeaderBytes] ^= 1;
  SegmentDecoder d;
  d.feed(first + second);
  ASSERT_TRUE(d.next().ok());
  Status s = d.next().status();
  EXPECT_TRUE(contains(s, "segment 1 at offset " + std::to_string(first.size()))) << s.message();
}

TEST(Segment, CarriesTheLargestIncompressibleEvent) {
  std::string big(kMaxEventBytes, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : big) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift: incompressible bytes
    c = static_cast<char>(x);
  }
  Events events = {big};
  auto r = decode_one(encode_segment(0, events));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(**r, events);
}

}  // namespace
}  // namespace relive::wire
