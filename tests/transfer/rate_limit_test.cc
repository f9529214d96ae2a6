#include "transfer/rate_limit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace relive::transfer {
namespace {

using namespace std::chrono_literals;

// Time moves only when someone sleeps: a sleep jumps the clock to its deadline (never back), so
// the clock ends at the latest moment any caller was allowed to go.
class FakeClock : public RateClock {
 public:
  SteadyClock::time_point now() override {
    std::lock_guard<std::mutex> l(mu_);
    return now_;
  }
  void sleep_until(SteadyClock::time_point t) override {
    std::lock_guard<std::mutex> l(mu_);
    ++sleeps_;
    now_ = std::max(now_, t);
  }
  void advance(std::chrono::nanoseconds d) {
    std::lock_guard<std::mutex> l(mu_);
    now_ += d;
  }
  double seconds_since(SteadyClock::time_point t) {
    return std::chrono::duration<double>(now() - t).count();
  }
  int sleeps() {
    std::lock_guard<std::mutex> l(mu_);
    return sleeps_;
  }

 private:
  std::mutex mu_;
  SteadyClock::time_point now_{};
  int sleeps_ = 0;
};

Status ok_writer(std::string_view) { return Status::Ok(); }

TEST(RateLimiter, BurstGoesAtOnceThenTheRateHolds) {
  FakeClock clock;
  auto start = clock.now();
  RateLimiter limiter(1000000, &clock, 10000);  // 1 MB/s, 10 kB burst
  limiter.acquire(10000);
  EXPECT_EQ(clock.sleeps(), 0) << "the burst must not wait";
  limiter.acquire(500000);
  EXPECT_NEAR(clock.seconds_since(start), 0.5, 1e-6);
  limiter.acquire(250000);
  EXPECT_NEAR(clock.seconds_since(start), 0.75, 1e-6);
}

TEST(RateLimiter, IdleTimeRefillsNoMoreThanTheBurst) {
  FakeClock clock;
  RateLimiter limiter(1000000, &clock, 10000);
  limiter.acquire(10000);
  clock.advance(10s);  // idle: 10 MB worth of time, but the bucket holds 10 kB
  auto before = clock.now();
  limiter.acquire(10000);
  EXPECT_EQ(clock.sleeps(), 0);
  limiter.acquire(100000);
  EXPECT_NEAR(clock.seconds_since(before), 0.1, 1e-6);
}

TEST(RateLimiter, ZeroIsUnlimited) {
  FakeClock clock;
  RateLimiter limiter(0, &clock);
  for (int i = 0; i < 1000; ++i) limiter.acquire(1u << 30);
  EXPECT_EQ(clock.sleeps(), 0);
  std::string big(1u << 20, 'x');
  ASSERT_TRUE(limiter.metered(big, ok_writer).ok());
  EXPECT_EQ(limiter.stats().bytes, big.size());
}

TEST(RateLimiter, DefaultBurstIsSmall) {
  FakeClock clock;
  EXPECT_EQ(RateLimiter(1000, &clock).burst_bytes(), RateLimiter::kMinBurstBytes);
  EXPECT_EQ(RateLimiter(1000000000, &clock).burst_bytes(), 2000000u);  // 2 ms
}

// Threads sharing one limiter: their sum is capped, not each one.
TEST(RateLimiter, CapsTheSumOverThreads) {
  FakeClock clock;
  auto start = clock.now();
  const uint64_t rate = 2000000, burst = 20000;
  RateLimiter limiter(rate, &clock, burst);
  const int threads = 4, rounds = 200;
  const uint64_t piece = 5000;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) limiter.acquire(piece);
    });
  for (auto& t : ts) t.join();
  double total = static_cast<double>(threads * rounds * piece);
  // The last caller was let go exactly when the rate had paid for everything past the burst.
  EXPECT_NEAR(clock.seconds_since(start), (total - burst) / rate, 1e-6);
}

TEST(RateLimiter, MeteredChunksWritesAndCountsBusyTime) {
  FakeClock clock;
  auto start = clock.now();
  RateLimiter limiter(1000000, &clock, RateLimiter::kMinBurstBytes);
  std::vector<size_t> pieces;
  auto writer = [&](std::string_view b) {
    pieces.push_back(b.size());
    return Status::Ok();
  };
  std::string data(300000, 'y');
  ASSERT_TRUE(limiter.metered(data, writer).ok());
  ASSERT_EQ(pieces.size(), 5u);  // 4 x 64 KiB + the rest
  for (size_t i = 0; i + 1 < pieces.size(); ++i) EXPECT_EQ(pieces[i], RateLimiter::kChunkBytes);
  RateStats s = limiter.stats();
  EXPECT_EQ(s.bytes, data.size());
  double expect_s = (300000.0 - RateLimiter::kMinBurstBytes) / 1e6;
  EXPECT_NEAR(s.busy_ms, expect_s * 1000, 1e-3);
  EXPECT_NEAR(clock.seconds_since(start), expect_s, 1e-6);
  // Idle time between sends is not busy time.
  clock.advance(5s);
  EXPECT_NEAR(limiter.stats().busy_ms, expect_s * 1000, 1e-3);
  // Above the cap only by the burst that went at once.
  EXPECT_NEAR(s.rate(), 1e6 * 300000.0 / (300000.0 - RateLimiter::kMinBurstBytes), 1);
}

// A gap between sends counts as busy for as long as it refilled the bucket (the burst that
// then goes at once was paid for in that time), and no longer.
TEST(RateLimiter, IdleGapsCountOnlyUpToTheRefill) {
  FakeClock clock;
  const uint64_t burst = 10000;
  RateLimiter limiter(1000000, &clock, burst);
  std::string data(110000, 'g');
  ASSERT_TRUE(limiter.metered(data, ok_writer).ok());  // 100 ms past the burst
  clock.advance(5s);
  ASSERT_TRUE(limiter.metered(data, ok_writer).ok());  // the refilled burst, then 100 ms
  clock.advance(1ms);                                  // refills 1000 bytes
  ASSERT_TRUE(limiter.metered(data, ok_writer).ok());  // 1000 at once, then 109 ms
  RateStats s = limiter.stats();
  EXPECT_NEAR(s.busy_ms, 100 + 10 + 100 + 1 + 109, 1e-3);
  EXPECT_NEAR(s.rate(), 330000.0 / 0.320, 1) << "bytes past the first burst, at the cap";
}

TEST(RateLimiter, WholeFramesGoInOnePiece) {
  FakeClock clock;
  RateLimiter limiter(1000000, &clock);
  int calls = 0;
  std::string frame(200000, 'f');
  ASSERT_TRUE(limiter
                  .metered(
                      frame,
                      [&](std::string_view b) {
                        ++calls;
                        EXPECT_EQ(b.size(), frame.size());
                        return Status::Ok();
                      },
                      /*whole=*/true)
                  .ok());
  EXPECT_EQ(calls, 1);
}

TEST(RateLimiter, AWriteErrorStopsAndIsReturned) {
  FakeClock clock;
  RateLimiter limiter(1000000, &clock);
  int calls = 0;
  std::string data(300000, 'z');
  Status s = limiter.metered(
      data, [&](std::string_view) { return ++calls == 2 ? Status::IoError("cut") : Status::Ok(); });
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(limiter.stats().bytes, RateLimiter::kChunkBytes) << "only what was written counts";
}

// The real clock: a cap far above what a test sends never waits long, and stats add up.
TEST(RateLimiter, RealClockMeters) {
  RateLimiter limiter(1000000000);
  std::string data(1u << 20, 'r');
  ASSERT_TRUE(limiter.metered(data, ok_writer).ok());
  EXPECT_EQ(limiter.stats().bytes, data.size());
  EXPECT_GT(limiter.stats().busy_ms, 0.0);
}

}  // namespace
}  // namespace relive::transfer
