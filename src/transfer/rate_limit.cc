#include "transfer/rate_limit.h"

#include <algorithm>
#include <thread>

namespace relive::transfer {
namespace {

class RealClock : public RateClock {
 public:
  SteadyClock::time_point now() override { return SteadyClock::now(); }
  void sleep_until(SteadyClock::time_point t) override { std::this_thread::sleep_until(t); }
};

uint64_t default_burst(uint64_t rate) {
  return std::max<uint64_t>(RateLimiter::kMinBurstBytes, rate / 500);  // 2 ms
}

}  // namespace

RateClock& RateClock::real() {
  static RealClock clock;  // stateless
  return clock;
}

RateLimiter::RateLimiter(uint64_t bytes_per_second, RateClock* clock, uint64_t burst_bytes)
    : rate_(bytes_per_second),
      burst_(burst_bytes > 0 ? burst_bytes : default_burst(bytes_per_second)),
      clock_(clock),
      tokens_(static_cast<double>(burst_)),
      last_refill_(clock->now()) {}

void RateLimiter::acquire(uint64_t n) {
  if (rate_ == 0) return;
  SteadyClock::time_point until;
  {
    std::lock_guard<std::mutex> l(mu_);
    SteadyClock::time_point now = clock_->now();
    double elapsed = std::chrono::duration<double>(now - last_refill_).count();
    last_refill_ = now;
    tokens_ = std::min(static_cast<double>(burst_), tokens_ + elapsed * static_cast<double>(rate_));
    tokens_ -= static_cast<double>(n);
    if (tokens_ >= 0) return;
    // The debt (this caller's and that of those queued before it) is paid off at `rate_`.
    auto wait = std::chrono::duration<double>(-tokens_ / static_cast<double>(rate_));
    until = now + std::chrono::duration_cast<SteadyClock::duration>(wait);
  }
  clock_->sleep_until(until);
}

void RateLimiter::begin_busy() {
  std::lock_guard<std::mutex> l(mu_);
  if (busy_callers_++ > 0) return;
  busy_since_ = clock_->now();
  // An idle gap refilled the bucket, by at most the burst: the part of the gap that did (up to
  // burst / rate) counts as busy, so that what the refill lets through at once is paid for in
  // time and the metered rate cannot exceed the cap by a burst per gap.
  if (rate_ > 0 && busy_ended_ != SteadyClock::time_point{}) {
    auto refill = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(static_cast<double>(burst_) / static_cast<double>(rate_)));
    busy_ += std::min<std::chrono::nanoseconds>(busy_since_ - busy_ended_, refill);
  }
}

void RateLimiter::count(int64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  bytes_ = static_cast<uint64_t>(static_cast<int64_t>(bytes_) + bytes);
}

void RateLimiter::end_busy() {
  std::lock_guard<std::mutex> l(mu_);
  if (--busy_callers_ > 0) return;
  busy_ended_ = clock_->now();
  busy_ += busy_ended_ - busy_since_;
}

Status RateLimiter::metered(std::string_view bytes, const Writer& write, bool whole) {
  begin_busy();
  // Each piece is counted before it is written (and taken back if the write fails), so whoever
  // has received bytes through the limiter finds them in stats().
  auto send = [&](std::string_view piece) {
    acquire(piece.size());
    count(static_cast<int64_t>(piece.size()));
    Status s = write(piece);
    if (!s.ok()) count(-static_cast<int64_t>(piece.size()));
    return s;
  };
  Status s = Status::Ok();
  if (whole || rate_ == 0) {
    s = send(bytes);
  } else {
    for (size_t at = 0; at < bytes.size() && s.ok(); at += kChunkBytes) {
      s = send(bytes.substr(at, kChunkBytes));
    }
  }
  end_busy();
  return s;
}

RateStats RateLimiter::stats() {
  std::lock_guard<std::mutex> l(mu_);
  std::chrono::nanoseconds busy = busy_;
  if (busy_callers_ > 0) busy += clock_->now() - busy_since_;
  return RateStats{bytes_, std::chrono::duration<double, std::milli>(busy).count()};
}

}  // namespace relive::transfer
