#include "security/replay_guard.h"

#include <fmt/format.h>
#include <openssl/rand.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "common/check.h"

namespace relive::security {

protocol::Nonce random_nonce() {
  protocol::Nonce n;
  int rc = RAND_bytes(n.bytes.data(), static_cast<int>(n.bytes.size()));
  RELIVE_CHECK(rc == 1, "RAND_bytes failed: {}", rc);
  return n;
}

int64_t unix_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Nonces are random, so any 8 of their bytes are a good hash.
size_t ReplayGuard::NonceHash::operator()(const protocol::Nonce& n) const {
  size_t h;
  std::memcpy(&h, n.bytes.data(), sizeof h);
  return h;
}

ReplayGuard::ReplayGuard(std::chrono::seconds window, size_t max_entries)
    : window_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(window).count()),
      max_entries_(max_entries) {
  RELIVE_CHECK(window.count() > 0 && max_entries > 0, "window {} s, {} entries", window.count(),
               max_entries);
}

void ReplayGuard::evict(int64_t now_ns) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now_ns) {
    seen_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
}

Status ReplayGuard::check(const protocol::Nonce& nonce, int64_t timestamp_ns, int64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  high_water_ns_ = std::max(high_water_ns_, now_ns);
  int64_t now = high_water_ns_;
  evict(now);
  // Differences in long double: hostile timestamps near INT64_MIN/MAX must not overflow.
  long double skew_s = (static_cast<long double>(timestamp_ns) - now) / 1e9L;
  long double window_s = window_ns_ / 1e9L;
  if (skew_s < -window_s || skew_s > window_s) {
    return Status::Aborted(fmt::format(
        "request refused: timestamp is {:.1f} s {} this host's clock, outside the ±{:.0f} s "
        "window (stale or replayed request, or clocks out of sync)",
        static_cast<double>(skew_s < 0 ? -skew_s : skew_s), skew_s < 0 ? "behind" : "ahead of",
        static_cast<double>(window_s)));
  }
  if (seen_.count(nonce) != 0) {
    return Status::Aborted(
        fmt::format("request refused: replayed nonce {} (already seen within the last {:.0f} s)",
                    protocol::nonce_hex(nonce), static_cast<double>(window_s)));
  }
  if (seen_.size() >= max_entries_) {
    return Status::Aborted(fmt::format(
        "request refused: {} requests within {:.0f} s, more than the replay guard can track",
        seen_.size(), static_cast<double>(window_s)));
  }
  seen_.insert(nonce);
  by_expiry_.emplace(timestamp_ns + window_ns_, nonce);
  return Status::Ok();
}

}  // namespace relive::security
