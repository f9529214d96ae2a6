// ReplayGuard: refuses control requests that were captured and sent again. A request is fresh
// when its timestamp lies within ±window of the receiver's clock and its nonce has not been seen
// within that window. Nonces older than the window are forgotten: a request carrying one would
// be refused as stale anyway, so memory stays bounded by the request rate times the window.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_set>

#include "relive/status.h"
#include "wire/protocol_types.h"

namespace relive::security {

// 128 bits from OpenSSL's CSPRNG; aborts if it cannot be seeded (nothing secure could follow).
protocol::Nonce random_nonce();
// The wall clock (CLOCK_REALTIME) in unix nanoseconds: what requests carry.
int64_t unix_now_ns();

// Thread-safe: relived admits requests of several migrations at once.
class ReplayGuard {
 public:
  // At most `max_entries` nonces are remembered; when that many unexpired ones are held, new
  // requests are refused (failing closed) until old ones expire.
  explicit ReplayGuard(std::chrono::seconds window = std::chrono::seconds(60),
                       size_t max_entries = size_t{1} << 20);

  // Ok and remembers the nonce when the request is fresh; Aborted naming the reason (stale or
  // future timestamp, replayed nonce, guard full) otherwise. `now_ns` is the receiver's unix
  // time; the guard never lets its notion of now go backwards, so a clock step cannot revive
  // a forgotten nonce.
  Status check(const protocol::Nonce& nonce, int64_t timestamp_ns, int64_t now_ns);

  size_t remembered() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_.size();
  }

 private:
  struct NonceHash {
    size_t operator()(const protocol::Nonce& n) const;
  };
  void evict(int64_t now_ns);

  mutable std::mutex mu_;  // guards everything below
  int64_t window_ns_;
  size_t max_entries_;
  int64_t high_water_ns_ = INT64_MIN;
  std::unordered_set<protocol::Nonce, NonceHash> seen_;
  std::multimap<int64_t, protocol::Nonce> by_expiry_;  // timestamp + window -> nonce
};

}  // namespace relive::security
