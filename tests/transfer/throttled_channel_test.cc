#include "transfer/throttled_channel.h"

#include <gtest/gtest.h>

#include "test_channel.h"
#include "transfer/bulk.h"

namespace relive::transfer {
namespace {

// A clock that jumps to each deadline (see rate_limit_test.cc).
class JumpClock : public RateClock {
 public:
  SteadyClock::time_point now() override { return now_; }
  void sleep_until(SteadyClock::time_point t) override { now_ = std::max(now_, t); }
  SteadyClock::time_point now_{};
};

TEST(ThrottledChannel, BulkDataArrivesIntactAndIsMeteredAtTheCap) {
  JumpClock clock;
  auto limiter = std::make_shared<RateLimiter>(1000000, &clock, RateLimiter::kMinBurstBytes);
  auto inner = std::make_unique<testing::MemoryChannel>();
  testing::MemoryChannel* mem = inner.get();
  ThrottledChannel ch(std::move(inner), limiter);

  BulkSender out(&ch);
  std::string event = event_header(7, 0);
  uint64_t x = 88172645463325252ull;  // random bytes: LZ4 leaves them as they are
  for (int i = 0; i < 500000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    event.push_back(static_cast<char>(x));
  }
  ASSERT_TRUE(out.add(event).ok());
  ASSERT_TRUE(out.flush().ok());

  BulkReceiver in(mem);
  auto events = in.next();
  ASSERT_TRUE(events.ok()) << events.status().to_string();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0], event);
  RateStats s = limiter->stats();
  ASSERT_GT(out.wire_bytes(), 500000u);
  EXPECT_EQ(s.bytes, out.wire_bytes());
  double seconds = std::chrono::duration<double>(clock.now_ - SteadyClock::time_point{}).count();
  EXPECT_NEAR(seconds, (out.wire_bytes() - RateLimiter::kMinBurstBytes) / 1e6, 1e-6);
}

TEST(ThrottledChannel, FramesGoWholeAndReceivesPassThrough) {
  JumpClock clock;
  auto limiter = std::make_shared<RateLimiter>(1000, &clock);
  auto inner = std::make_unique<testing::MemoryChannel>();
  testing::MemoryChannel* mem = inner.get();
  ThrottledChannel ch(std::move(inner), limiter);
  ASSERT_TRUE(send_protocol_message(ch, protocol::Message{1, protocol::Ack{3, "ok"}}).ok());
  ASSERT_EQ(mem->frames.size(), 1u);
  uint64_t sent = mem->frames[0].size();
  EXPECT_EQ(limiter->stats().bytes, sent);
  // MemoryChannel hands the frame back: receiving it is not charged.
  auto m = recv_protocol_message(ch);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->sequence, 1u);
  EXPECT_EQ(limiter->stats().bytes, sent);
}

}  // namespace
}  // namespace relive::transfer
