#include "wire/event_codec.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "trace/test_samples.h"

namespace relive::wire {
namespace {

using testing::sample_events;

// Byte 16 holds the Event union's tag: 8 bytes of segment table, 8 of root pointer, then the
// root struct's data section, whose first 16 bits are the discriminant.
constexpr size_t kTagOffset = 16;

std::string describe(const trace::Event& e) { return "event kind " + std::to_string(e.index()); }

TEST(EventCodec, RoundTripsEveryKind) {
  for (const trace::Event& e : sample_events()) {
    Result<trace::Event> back = decode_event(encode_event(e));
    ASSERT_TRUE(back.ok()) << describe(e) << ": " << back.status().to_string();
    EXPECT_EQ(*back, e) << describe(e);
  }
}

TEST(EventCodec, RoundTripsDefaultsAndLargeWrites) {
  trace::SyscallEvent big;
  big.writes = {{0x1000, std::string(3 << 20, 'x')}, {0, std::string()}};
  trace::SyscallEvent continued;  // a fast-path write whose rest went out traced
  continued.nr = 1;
  continued.result = 96;
  continued.continued = true;
  for (const trace::Event& e :
       {trace::Event(trace::SyscallEvent{}), trace::Event(big), trace::Event(continued),
        trace::Event(trace::SignalEvent{}), trace::Event(trace::ProcessExitEvent{-1}),
        trace::Event(
            trace::SitePatchEvent{7, 0x7ffff7eca2ab, 0x7ffff8000140, 0x7ffff8000000, true})}) {
    Result<trace::Event> back = decode_event(encode_event(e));
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(*back, e);
  }
}

// Found by the fuzzer: Text built from std::string implicitly went through c_str().
TEST(EventCodec, TextWithEmbeddedNulRoundTrips) {
  trace::SyscallEvent s;
  s.file = std::string("ab\0cd", 5);
  Result<trace::Event> back = decode_event(encode_event(s));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(std::get<trace::SyscallEvent>(*back).file, s.file);
}

TEST(EventCodec, EncodingIsWholeWords) {
  for (const trace::Event& e : sample_events()) EXPECT_EQ(encode_event(e).size() % 8, 0u);
}

TEST(EventCodec, DecodesFromUnalignedBuffer) {
  trace::Event e = sample_events()[0];
  std::string shifted = "x" + encode_event(e);
  Result<trace::Event> back = decode_event(std::string_view(shifted).substr(1));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, e);
}

TEST(EventCodec, RejectsEmptyInput) { EXPECT_TRUE(decode_event("").status().is_corruption()); }

TEST(EventCodec, RejectsPartialWords) {
  std::string bytes = encode_event(sample_events()[0]);
  bytes.pop_back();
  EXPECT_TRUE(decode_event(bytes).status().is_corruption());
}

TEST(EventCodec, RejectsGarbageBytes) {
  EXPECT_TRUE(decode_event("this is not a capnp message!!!!!").status().is_corruption());
  EXPECT_TRUE(decode_event(std::string(64, '\xff')).status().is_corruption());
}

TEST(EventCodec, RejectsEveryTruncation) {
  for (const trace::Event& e : sample_events()) {
    std::string bytes = encode_event(e);
    for (size_t len = 8; len < bytes.size(); len += 8) {
      EXPECT_FALSE(decode_event(bytes.substr(0, len)).ok()) << describe(e) << " cut at " << len;
    }
  }
}

TEST(EventCodec, RejectsTrailingBytes) {
  std::string bytes = encode_event(sample_events()[0]) + std::string(8, '\0');
  EXPECT_TRUE(decode_event(bytes).status().is_corruption());
}

TEST(EventCodec, RejectsUnknownEventKind) {
  std::string bytes = encode_event(trace::ProcessExitEvent{3});
  ASSERT_EQ(bytes[kTagOffset], 4) << "the Event union tag moved; update kTagOffset";
  bytes[kTagOffset] = 99;
  Result<trace::Event> r = decode_event(bytes);
  ASSERT_TRUE(r.status().is_corruption());
  EXPECT_NE(r.status().message().find("unknown event kind 99"), std::string::npos);
}

TEST(EventCodec, RejectsAPreemptionWithoutAWholeRegisterSet) {
  trace::PreemptEvent p{7, std::string(100, 'x'), 1};
  Result<trace::Event> r = decode_event(encode_event(p));
  ASSERT_TRUE(r.status().is_corruption());
  EXPECT_NE(r.status().message().find("100 bytes of registers"), std::string::npos)
      << r.status().to_string();
}

TEST(EventCodec, RejectsAbsurdSegmentTable) {
  std::string bytes = encode_event(sample_events()[0]);
  bytes[0] = bytes[1] = bytes[2] = '\xff';  // 2^24 segments
  EXPECT_TRUE(decode_event(bytes).status().is_corruption());
  bytes = encode_event(sample_events()[0]);
  bytes[4] = bytes[5] = bytes[6] = bytes[7] = '\xff';  // a 32 GiB first segment
  EXPECT_TRUE(decode_event(bytes).status().is_corruption());
}

TEST(EventCodec, RandomBytesNeverCrash) {
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(8 * (rng() % 40), '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    if (i % 2 == 0 && bytes.size() >= 8) {
      // Make the segment table plausible so decoding gets past it.
      bytes[0] = bytes[1] = bytes[2] = bytes[3] = 0;
      uint32_t words = static_cast<uint32_t>(bytes.size() / 8 - 1);
      for (int b = 0; b < 4; ++b) bytes[4 + b] = static_cast<char>(words >> (8 * b));
    }
    Result<trace::Event> r = decode_event(bytes);
    EXPECT_TRUE(r.ok() || r.status().is_corruption());
  }
}

TEST(EventCodec, MutatedEncodingsNeverCrash) {
  std::mt19937_64 rng(777);
  std::vector<trace::Event> events = sample_events();
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = encode_event(events[i % events.size()]);
    for (int flips = 1 + rng() % 4; flips > 0; --flips) {
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 << (rng() % 8));
    }
    Result<trace::Event> r = decode_event(bytes);
    EXPECT_TRUE(r.ok() || r.status().is_corruption());
  }
}

}  // namespace
}  // namespace relive::wire
