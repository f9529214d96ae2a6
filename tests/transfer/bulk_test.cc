#include "transfer/bulk.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "transfer/test_channel.h"
#include "wire/segment.h"

namespace relive::transfer {
namespace {

using testing::MemoryChannel;
using testing::SocketPairChannel;

// Events of assorted sizes, the largest several MiB, so a batch spans several segments.
std::vector<std::string> sample_events() {
  std::mt19937 rng(7);
  std::vector<std::string> out;
  for (size_t size : {8u, 9u, 4096u, 100000u, 3u << 20, 8u, 5u << 20, 64u}) {
    std::string e(size, '\0');
    for (size_t i = 0; i < size; i += 64) e[i] = static_cast<char>(rng());
    out.push_back(std::move(e));
  }
  return out;
}

// Receives segments until `n` events arrived.
Result<std::vector<std::string>> receive_events(BulkReceiver* in, size_t n) {
  std::vector<std::string> got;
  while (got.size() < n) {
    RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> events, in->next());
    for (auto& e : events) got.push_back(std::move(e));
  }
  return got;
}

TEST(Bulk, RoundTripsEventsAcrossSegments) {
  MemoryChannel ch;
  BulkSender out(&ch);
  std::vector<std::string> events = sample_events();
  for (const auto& e : events) ASSERT_TRUE(out.add(e).ok());
  ASSERT_TRUE(out.flush().ok());
  EXPECT_EQ(out.wire_bytes(), ch.raw.size());

  BulkReceiver in(&ch);
  Result<std::vector<std::string>> got = receive_events(&in, events.size());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_TRUE(*got == events);
  EXPECT_EQ(in.wire_bytes(), out.wire_bytes());
  EXPECT_TRUE(ch.raw.empty());
}

TEST(Bulk, FlushWithNothingBatchedSendsNothing) {
  MemoryChannel ch;
  BulkSender out(&ch);
  ASSERT_TRUE(out.flush().ok());
  EXPECT_TRUE(ch.raw.empty());
  EXPECT_EQ(out.wire_bytes(), 0u);
}

TEST(Bulk, RoundTripsOverSocketPair) {
  auto [a, b] = SocketPairChannel::pair();
  ASSERT_TRUE(a && b);
  std::vector<std::string> events = sample_events();
  Status sent;
  std::thread sender([&, ch = a.get()] {
    BulkSender out(ch);
    for (const auto& e : events) {
      sent = out.add(e);
      if (!sent.ok()) return;
    }
    sent = out.flush();
  });
  BulkReceiver in(b.get());
  Result<std::vector<std::string>> got = receive_events(&in, events.size());
  sender.join();
  ASSERT_TRUE(sent.ok()) << sent.to_string();
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_TRUE(*got == events);
}

// One segment of three events on `ch`; returns its bytes.
std::string one_segment(MemoryChannel* ch) {
  BulkSender out(ch);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(out.add(event_header(i, 0) + std::string(5000, 'p')).ok());
  EXPECT_TRUE(out.flush().ok());
  return ch->raw;
}

TEST(Bulk, FlippedPayloadByteIsCorruption) {
  MemoryChannel ch;
  std::string segment = one_segment(&ch);
  for (size_t at : {wire::kSegmentHeaderBytes, wire::kSegmentHeaderBytes + 7, segment.size() - 1}) {
    ch.raw = segment;
    ch.raw[at] ^= 0x10;
    BulkReceiver in(&ch);
    Result<std::vector<std::string>> r = in.next();
    ASSERT_FALSE(r.ok()) << "flip at " << at;
    EXPECT_TRUE(r.status().is_corruption()) << r.status().to_string();
  }
}

TEST(Bulk, FlippedHeaderByteIsCorruption) {
  MemoryChannel ch;
  std::string segment = one_segment(&ch);
  // Magic, then the sequence number (bytes 8..15): not the length the receiver reads by.
  for (size_t at : {0u, 1u, 8u, 12u}) {
    ch.raw = segment;
    ch.raw[at] ^= 0x01;
    BulkReceiver in(&ch);
    Result<std::vector<std::string>> r = in.next();
    ASSERT_FALSE(r.ok()) << "flip at " << at;
    EXPECT_TRUE(r.status().is_corruption()) << r.status().to_string();
  }
}

TEST(Bulk, TruncatedSegmentFails) {
  MemoryChannel ch;
  std::string segment = one_segment(&ch);
  for (size_t len : {size_t{0}, size_t{10}, wire::kSegmentHeaderBytes, segment.size() - 1}) {
    ch.raw = segment.substr(0, len);
    BulkReceiver in(&ch);
    EXPECT_FALSE(in.next().ok()) << "cut to " << len;
  }
}

TEST(Bulk, RepeatedSegmentIsCorruption) {
  MemoryChannel ch;
  std::string segment = one_segment(&ch);
  ch.raw = segment + segment;  // the same sequence number twice
  BulkReceiver in(&ch);
  ASSERT_TRUE(in.next().ok());
  Result<std::vector<std::string>> r = in.next();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().is_corruption()) << r.status().to_string();
}

TEST(Bulk, GarbageIsCorruptionNotACrash) {
  std::mt19937_64 rng(99);
  for (int i = 0; i < 200; ++i) {
    MemoryChannel ch;
    ch.raw.resize(wire::kSegmentHeaderBytes + rng() % 4096);
    for (char& c : ch.raw) c = static_cast<char>(rng());
    BulkReceiver in(&ch);
    Result<std::vector<std::string>> r = in.next();
    ASSERT_FALSE(r.ok());
    // Either a header check fails, or the announced length runs past the garbage.
    EXPECT_TRUE(r.status().is_corruption() || r.status().code() == Status::Code::kAborted)
        << r.status().to_string();
  }
}

TEST(Bulk, EventHeaderHelpersAreLittleEndian) {
  std::string h = event_header(0x04030201, 0x08070605);
  ASSERT_EQ(h.size(), 8u);
  EXPECT_EQ(h, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  append_u64(&h, 0x7fff12345000ull);
  EXPECT_EQ(event_u32(h, 0), 0x04030201u);
  EXPECT_EQ(event_u32(h, 4), 0x08070605u);
  EXPECT_EQ(event_u64(h, 8), 0x7fff12345000ull);
}

}  // namespace
}  // namespace relive::transfer
