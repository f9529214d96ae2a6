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
  // A renewal may take up to a third of the TTL (then the next one is due).
  Result<EtcdLease> etcd = EtcdLease::create(
      endpoints_, std::chrono::milliseconds(std::max<int64_t>(lease_.ttl_s * 1000 / 3, 500)));
  if (!etcd.ok()) {
    lost_ = true;
    return;
  }
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_ && !lost_) {
    auto period = std::chrono::milliseconds(std::max<int64_t>(lease_.ttl_s * 1000 / 3, 100));
    cv_.wait_for(l, period, [this] { return stop_; });
    if (stop_) break;
    Lease copy = lease_;
    l.unlock();
    Status s = etcd->keepalive(&copy);
    l.lock();
    if (s.ok()) {
      lease_ = copy;
      if (sink_) sink_(lease_.valid_until);
    } else if (s.code() == Status::Code::kAborted) {
      RELIVE_LOG_WARN("lease lost: {}", s.to_string());
      lost_ = true;
    } else {
      RELIVE_LOG_WARN("lease renewal failed (will retry until it runs out): {}", s.to_string());
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
