// RateLimiter: the bandwidth budget of one migration (`relive migrate --max-bandwidth`). Every
// stream the source writes to the destination (relive's channel, the post-copy page-server
// relay) takes its bytes from one shared limiter, so their sum is capped, and the limiter meters
// what went through it for the report: bytes, and the time the link was busy sending them.
//
// A token bucket with debt: acquire(n) takes n tokens even when fewer are there and then sleeps
// until the debt is paid at the configured rate, so concurrent callers queue behind each other
// in the order they asked and the total never runs ahead of `burst + rate * elapsed`. The burst
// is small (2 ms of traffic, at least one 16 KiB chunk): after an idle moment a sender may only
// get that far ahead, which keeps the achieved rate close to the cap even for short transfers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>

#include "common/clock.h"
#include "relive/status.h"

namespace relive::transfer {

// The time source the limiter reads and sleeps on; passed in so that tests can run the limiter
// on a fake clock. real() is the monotonic clock (common/clock.h) and a real sleep.
class RateClock {
 public:
  virtual ~RateClock() = default;
  virtual SteadyClock::time_point now() = 0;
  virtual void sleep_until(SteadyClock::time_point t) = 0;
  static RateClock& real();
};

// What went through a limiter.
struct RateStats {
  uint64_t bytes = 0;  // written by metered()'s writers (counted as each piece goes)
  // Time at least one metered() call was under way (union over threads), plus of each idle gap
  // between such periods the part that refilled the bucket (at most burst / rate): the time the
  // cap paid for the bytes. Long idle stretches (a dump, the destination's restore) are left out.
  double busy_ms = 0;
  // bytes per second while busy; 0 before anything was sent.
  double rate() const { return busy_ms > 0 ? bytes / (busy_ms / 1000.0) : 0; }
};

// Thread-safe. `clock` must outlive the limiter.
class RateLimiter {
 public:
  // Writes are cut into pieces of at most this many bytes, each acquired just before it goes.
  static constexpr uint64_t kChunkBytes = 64u << 10;
  static constexpr uint64_t kMinBurstBytes = 16u << 10;

  // `bytes_per_second` 0: unlimited (acquire never waits; metered() still meters).
  // `burst_bytes` 0: the default (2 ms of traffic, at least kMinBurstBytes).
  explicit RateLimiter(uint64_t bytes_per_second, RateClock* clock = &RateClock::real(),
                       uint64_t burst_bytes = 0);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  uint64_t bytes_per_second() const { return rate_; }
  uint64_t burst_bytes() const { return burst_; }

  // Blocks until `n` more bytes may go (at once when unlimited).
  void acquire(uint64_t n);

  // Sends `bytes` through `write`: in chunks of kChunkBytes, each acquired first, or in one
  // piece when `whole` (a protocol frame that must be written by one call) or unlimited.
  // Counts the bytes and the busy time. Returns write's first error.
  using Writer = std::function<Status(std::string_view)>;
  Status metered(std::string_view bytes, const Writer& write, bool whole = false);

  RateStats stats();

 private:
  void begin_busy();
  void end_busy();
  void count(int64_t bytes);

  const uint64_t rate_;
  const uint64_t burst_;
  RateClock* clock_;

  std::mutex mu_;
  double tokens_;                        // may be negative: the debt still to be paid
  SteadyClock::time_point last_refill_;  // when tokens_ was last brought up to date
  int busy_callers_ = 0;
  SteadyClock::time_point busy_since_{};
  SteadyClock::time_point busy_ended_{};  // end of the last busy period; {} before the first
  std::chrono::nanoseconds busy_{0};
  uint64_t bytes_ = 0;
};

}  // namespace relive::transfer
