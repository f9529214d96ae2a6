#include "wire/header_codec.h"

#include <gtest/gtest.h>

#include <string>

#include "common/hash.h"
#include "trace/test_samples.h"
#include "wire/le_bytes.h"

namespace relive::wire {
namespace {

using testing::sample_header;

constexpr size_t kVersionAt = 8;
constexpr size_t kLengthAt = 12;
constexpr size_t kChecksumAt = 16;

void set_u32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}

bool contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

TEST(HeaderCodec, RoundTrips) {
  trace::TraceHeader h = sample_header();
  Result<trace::TraceHeader> back = decode_header(encode_header(h));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, h);
}

TEST(HeaderCodec, RoundTripsCheckpointStartAndEmptyFields) {
  trace::TraceHeader h;
  h.start = trace::StartKind::kCheckpoint;
  h.checkpoint = "checkpoint";
  Result<trace::TraceHeader> back = decode_header(encode_header(h));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, h);
}

TEST(HeaderCodec, RoundTripsTheThreadsOfAMultiThreadedCheckpoint) {
  trace::TraceHeader h;
  h.start = trace::StartKind::kCheckpoint;
  h.checkpoint = "checkpoint";
  h.initial_tid = 4000;
  h.other_threads = {{4001, 5101}, {4007, 5102}, {4100, 5103}};
  Result<trace::TraceHeader> back = decode_header(encode_header(h));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, h);
}

TEST(HeaderCodec, TextFieldsWithEmbeddedNulRoundTrip) {
  trace::TraceHeader h;
  h.hostname = std::string("host\0name", 9);
  h.kernel = std::string("\0", 1);
  Result<trace::TraceHeader> back = decode_header(encode_header(h));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, h);
}

TEST(HeaderCodec, WritesMagicVersionLengthAndChecksum) {
  std::string bytes = encode_header(sample_header());
  EXPECT_EQ(bytes.substr(0, 8), "RLVTRACE");
  EXPECT_EQ(get_u32(bytes, kVersionAt), trace::kFormatVersion);
  EXPECT_EQ(get_u32(bytes, kLengthAt), bytes.size() - kHeaderPrefixBytes);
  EXPECT_EQ(get_u32(bytes, kChecksumAt), hash32(bytes.substr(kHeaderPrefixBytes)));
}

TEST(HeaderCodec, RejectsBadMagic) {
  std::string bytes = encode_header(sample_header());
  bytes[3] = 'X';
  Result<trace::TraceHeader> r = decode_header(bytes);
  ASSERT_TRUE(r.status().is_corruption());
  EXPECT_EQ(r.status().message(), "not a relive trace: bad magic");
}

TEST(HeaderCodec, RejectsEmptyAndShortFiles) {
  EXPECT_EQ(decode_header("").status().message(), "not a relive trace: bad magic");
  EXPECT_EQ(decode_header("RLV").status().message(), "not a relive trace: bad magic");
  EXPECT_TRUE(decode_header("RLVTRACE\x01").status().is_corruption());
}

TEST(HeaderCodec, ReportsFutureVersionWithBothVersions) {
  std::string bytes = encode_header(sample_header());
  set_u32(&bytes, kVersionAt, trace::kFormatVersion + 1);
  Result<trace::TraceHeader> r = decode_header(bytes);
  ASSERT_EQ(r.status().code(), Status::Code::kVersionMismatch) << r.status().to_string();
  EXPECT_TRUE(contains(r.status(), std::to_string(trace::kFormatVersion + 1)));
  EXPECT_TRUE(contains(r.status(), std::to_string(trace::kFormatVersion)));
}

TEST(HeaderCodec, RejectsVersionZero) {
  std::string bytes = encode_header(sample_header());
  set_u32(&bytes, kVersionAt, 0);
  EXPECT_TRUE(decode_header(bytes).status().is_corruption());
}

TEST(HeaderCodec, RejectsFlippedPayloadBit) {
  std::string bytes = encode_header(sample_header());
  bytes[bytes.size() - 20] ^= 0x04;
  Result<trace::TraceHeader> r = decode_header(bytes);
  ASSERT_TRUE(r.status().is_corruption());
  EXPECT_TRUE(contains(r.status(), "checksum"));
}

TEST(HeaderCodec, RejectsFlippedChecksumBit) {
  std::string bytes = encode_header(sample_header());
  bytes[kChecksumAt + 2] ^= 0x10;
  EXPECT_TRUE(decode_header(bytes).status().is_corruption());
}

TEST(HeaderCodec, RejectsTruncatedFile) {
  std::string bytes = encode_header(sample_header());
  for (size_t len : {size_t{12}, size_t{20}, bytes.size() / 2, bytes.size() - 1}) {
    Result<trace::TraceHeader> r = decode_header(bytes.substr(0, len));
    EXPECT_TRUE(r.status().is_corruption()) << len << ": " << r.status().to_string();
  }
}

TEST(HeaderCodec, RejectsExtraBytes) {
  std::string bytes = encode_header(sample_header()) + "tail";
  EXPECT_TRUE(decode_header(bytes).status().is_corruption());
}

TEST(HeaderCodec, RejectsAbsurdLength) {
  std::string bytes = encode_header(sample_header());
  set_u32(&bytes, kLengthAt, 0xffffffffu);
  Result<trace::TraceHeader> r = decode_header(bytes);
  ASSERT_TRUE(r.status().is_corruption());
  EXPECT_TRUE(contains(r.status(), "absurd"));
}

TEST(HeaderCodec, RejectsGarbagePayloadWithValidChecksum) {
  std::string payload(64, '\x5a');
  std::string bytes = "RLVTRACE";
  put_u32(&bytes, trace::kFormatVersion);
  put_u32(&bytes, static_cast<uint32_t>(payload.size()));
  put_u32(&bytes, hash32(payload));
  bytes += payload;
  EXPECT_TRUE(decode_header(bytes).status().is_corruption());
}

}  // namespace
}  // namespace relive::wire
