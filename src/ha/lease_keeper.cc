#include "ha/lease_keeper.h"

#include "common/logging.h"

namespace relive::ha {

LeaseKeeper::LeaseKeeper(std::vector<std::string> endpoints, Lease lease)
    : endpoints_(std::move(endpoints)), lease_(std::move(lease)) {
  thread_ = std::thread([this] { loop(); });
}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LeaseKeeper::on_valid_until(std::function<void(std::chrono::steady_clock::time_point)> sink) {
  std::lock_guard<std::mutex> l(mu_);
  sink_ = std::move(sink);
  if (sink_) sink_(lease_.valid_until);
}

bool LeaseKeeper::may_serve() const {
  std::lock_guard<std::mutex> l(mu_);
  return !lost_ && std::chrono::steady_clock::now() < lease_.valid_until;
}

std::chrono::milliseconds LeaseKeeper::remaining() const {
  std::lock_guard<std::mutex> l(mu_);
  return std::chrono::duration_cast<std::chrono::milliseconds>(lease_.valid_until -
                                                               std::chrono::steady_clock::now());
}

void LeaseKeeper::loop() {
  using std::chrono::milliseconds;
  const milliseconds ttl(lease_.ttl_s * 1000), fence = lease_.fence;
  // The etcd lease is renewed every third of its TTL; the key, with a fence, every fifth of it.
  // A request may take up to half the interval it must fit in before the next one is due.
  const milliseconds lease_period = std::max(ttl / 3, milliseconds(100));
  const milliseconds period =
      fence.count() > 0 ? std::max(fence / 5, milliseconds(20)) : lease_period;
  Result<EtcdLease> etcd =
      EtcdLease::create(endpoints_, fence.count() > 0 ? std::max(fence / 2, milliseconds(50))
                                                      : std::max(lease_period, milliseconds(500)));
  if (!etcd.ok()) {
    lost_ = true;
    return;
  }
  auto last_keepalive = std::chrono::steady_clock::now();
  // Failed renewals come every period while etcd is away: the first of a streak is said at once,
  // then at most one line a second, and the recovery once.
  uint64_t failed = 0;
  auto said_at = std::chrono::steady_clock::time_point{};
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_ && !lost_) {
    cv_.wait_for(l, period, [this] { return stop_; });
    if (stop_) break;
    Lease copy = lease_;
    l.unlock();
    Status s = Status::Ok();
    if (fence.count() == 0 || std::chrono::steady_clock::now() - last_keepalive >= lease_period) {
      s = etcd->keepalive(&copy);
      if (s.ok()) last_keepalive = std::chrono::steady_clock::now();
    }
    if (s.ok() && fence.count() > 0) s = etcd->renew_key(&copy);
    l.lock();
    if (s.ok()) {
      lease_ = copy;
      if (sink_) sink_(lease_.valid_until);
      if (failed > 0) RELIVE_LOG_INFO("lease renewed again after {} failed renewals", failed);
      failed = 0;
    } else if (s.code() == Status::Code::kAborted) {
      RELIVE_LOG_WARN("lease lost: {}", s.to_string());
      lost_ = true;
    } else {
      // What did land (a keepalive before a failed key renewal) is not counted: the ends kept
      // are earlier, so still safe, and the next round renews both.
      ++failed;
      auto now = std::chrono::steady_clock::now();
      if (failed == 1 || now - said_at >= std::chrono::seconds(1)) {
        RELIVE_LOG_WARN("lease renewal failed ({} in a row; retrying until it runs out): {}",
                        failed, s.to_string());
        said_at = now;
      }
    }
  }
}

Status LeaseKeeper::release() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  RELIVE_ASSIGN_OR_RETURN(EtcdLease etcd, EtcdLease::create(endpoints_));
  std::lock_guard<std::mutex> l(mu_);
  lost_ = true;
  if (sink_) sink_(std::chrono::steady_clock::time_point::min());
  return etcd.release(&lease_);
}

}  // namespace relive::ha
