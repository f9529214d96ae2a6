#include "wire/protocol_codec.h"

#include <gtest/gtest.h>

#include <string>

#include "common/hash.h"
#include "wire/le_bytes.h"

namespace relive::wire {
namespace {

namespace p = relive::protocol;

constexpr size_t kVersionAt = 4;
constexpr size_t kKindAt = 6;
constexpr size_t kLengthAt = 8;
constexpr size_t kChecksumAt = 12;

void set_le(std::string* s, size_t at, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}

// Recomputes the checksum so that a test reaches the check behind it.
void repair_checksum(std::string* frame) {
  std::string covered = frame->substr(0, kChecksumAt) + frame->substr(kProtocolHeaderBytes);
  set_le(frame, kChecksumAt, hash32(covered), 4);
}

bool contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

p::Nonce nonce_of(uint8_t seed) {
  p::Nonce n;
  for (size_t i = 0; i < n.bytes.size(); ++i) n.bytes[i] = static_cast<uint8_t>(seed + 17 * i);
  return n;
}

p::Message sample_request() {
  return {7, p::Request{"migrate.prepare", nonce_of(3), 1'790'000'000'123'456'789,
                        std::string("body\0with nul", 13)}};
}

TEST(ProtocolCodec, RoundTripsEveryKind) {
  std::vector<p::Message> all = {
      {0, p::Hello{"alpha", nonce_of(1), -5}},
      sample_request(),
      {8, p::Ack{7, "prepared"}},
      {10, p::Ack{8, "", std::string("typed\0reply", 11)}},
      {9, p::Error{7, 4, std::string("no\0pe", 5)}},
  };
  for (const p::Message& m : all) {
    Result<p::Message> back = decode_message(encode_message(m));
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(*back, m);
  }
}

TEST(ProtocolCodec, WritesMagicVersionKindLengthAndChecksum) {
  std::string f = encode_message(sample_request());
  EXPECT_EQ(f.substr(0, 4), "RLPM");
  EXPECT_EQ(get_u16(f, kVersionAt), kProtocolVersion);
  EXPECT_EQ(get_u16(f, kKindAt), static_cast<uint16_t>(MessageKind::kRequest));
  EXPECT_EQ(get_u32(f, kLengthAt), f.size() - kProtocolHeaderBytes);
  EXPECT_EQ(f.size() % 8, 0u);
}

TEST(ProtocolCodec, NonceHexIsBigEndianBytes) {
  EXPECT_EQ(p::nonce_hex(nonce_of(0)), "00112233445566778899aabbccddeeff");
}

TEST(ProtocolCodec, RejectsEveryFlippedBit) {
  std::string good = encode_message(sample_request());
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::string bad = good;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    Result<p::Message> m = decode_message(bad);
    EXPECT_FALSE(m.ok()) << "bit " << bit << " flipped went unnoticed";
  }
}

TEST(ProtocolCodec, RejectsFlippedPayloadBitAsChecksumMismatch) {
  std::string f = encode_message(sample_request());
  f[kProtocolHeaderBytes + 20] ^= 0x10;
  Result<p::Message> m = decode_message(f);
  ASSERT_TRUE(m.status().is_corruption());
  EXPECT_TRUE(contains(m.status(), "checksum mismatch")) << m.status().to_string();
}

TEST(ProtocolCodec, RejectsEveryTruncation) {
  std::string good = encode_message(sample_request());
  for (size_t n = 0; n < good.size(); ++n) {
    Result<p::Message> m = decode_message(good.substr(0, n));
    ASSERT_FALSE(m.ok()) << "truncated to " << n;
    EXPECT_TRUE(m.status().is_corruption()) << m.status().to_string();
  }
  Result<p::Message> m = decode_message(good.substr(0, 10));
  EXPECT_TRUE(contains(m.status(), "truncated")) << m.status().to_string();
}

TEST(ProtocolCodec, RejectsTrailingBytes) {
  Result<p::Message> m = decode_message(encode_message(sample_request()) + "12345678");
  EXPECT_TRUE(contains(m.status(), "holds")) << m.status().to_string();
}

TEST(ProtocolCodec, RejectsWrongMagic) {
  std::string f = encode_message(sample_request());
  f[0] = 'X';
  Result<p::Message> m = decode_message(f);
  ASSERT_TRUE(m.status().is_corruption());
  EXPECT_TRUE(contains(m.status(), "bad frame magic")) << m.status().to_string();
}

TEST(ProtocolCodec, RejectsFutureVersionAsVersionMismatch) {
  std::string f = encode_message(sample_request());
  set_le(&f, kVersionAt, kProtocolVersion + 1, 2);
  repair_checksum(&f);
  Result<p::Message> m = decode_message(f);
  EXPECT_EQ(m.status().code(), Status::Code::kVersionMismatch) << m.status().to_string();
  EXPECT_TRUE(contains(m.status(), "protocol version 2")) << m.status().to_string();
}

TEST(ProtocolCodec, RejectsUnknownKind) {
  std::string f = encode_message(sample_request());
  set_le(&f, kKindAt, 99, 2);
  repair_checksum(&f);
  EXPECT_TRUE(contains(decode_message(f).status(), "unknown message kind 99"));
}

TEST(ProtocolCodec, RejectsKindThatDisagreesWithEnvelope) {
  std::string f = encode_message(sample_request());
  set_le(&f, kKindAt, static_cast<uint16_t>(MessageKind::kAck), 2);
  repair_checksum(&f);
  Result<p::Message> m = decode_message(f);
  EXPECT_TRUE(contains(m.status(), "frame kind ack but envelope holds request"))
      << m.status().to_string();
}

TEST(ProtocolCodec, RejectsAbsurdLengthsFromHeaderAlone) {
  std::string header = encode_message(sample_request()).substr(0, kProtocolHeaderBytes);
  for (uint32_t len : {0u, 7u, 12u, kMaxControlPayloadBytes + 8, 0xfffffff8u}) {
    set_le(&header, kLengthAt, len, 4);
    Result<ProtocolFrameHeader> h = parse_frame_header(header);
    EXPECT_TRUE(contains(h.status(), "absurd")) << len << ": " << h.status().to_string();
  }
}

TEST(ProtocolCodec, RejectsGarbagePayloadWithValidChecksum) {
  std::string f = encode_message(sample_request());
  for (size_t i = kProtocolHeaderBytes; i < f.size(); ++i) f[i] = static_cast<char>(0xff);
  repair_checksum(&f);
  Result<p::Message> m = decode_message(f);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(m.status().is_corruption()) << m.status().to_string();
}

TEST(ProtocolReader, ReadsFramesFedByteByByte) {
  std::string stream = encode_message({0, p::Hello{"a", nonce_of(1), 1}}) +
                       encode_message(sample_request()) + encode_message({2, p::Ack{7, ""}});
  ProtocolReader reader;
  std::vector<p::Message> got;
  for (char c : stream) {
    reader.feed(std::string_view(&c, 1));
    Result<std::optional<p::Message>> m = reader.next();
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    if (m->has_value()) got.push_back(**m);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1], sample_request());
  EXPECT_FALSE(reader.has_partial());
}

TEST(ProtocolReader, ReportsPartialFrameAndStickyErrors) {
  std::string f = encode_message(sample_request());
  ProtocolReader reader;
  reader.feed(f.substr(0, f.size() - 1));
  Result<std::optional<p::Message>> m = reader.next();
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->has_value());
  EXPECT_TRUE(reader.has_partial());
  reader.feed("X");  // wrong last byte: checksum mismatch
  EXPECT_TRUE(contains(reader.next().status(), "checksum"));
  reader.feed(f);
  EXPECT_TRUE(contains(reader.next().status(), "checksum"));
}

}  // namespace
}  // namespace relive::wire
