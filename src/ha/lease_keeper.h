// LeaseKeeper: the primary's hold on the fence. A thread renews the etcd lease every third of
// its TTL and, with a fence interval (etcd_lease.h), rewrites the key every fifth of it; the
// primary asks may_serve() before it releases output, and stops releasing (and then
// fences itself) when it returns false: the lease may have expired, so the backup may be
// serving. valid_until is the conservative local end of the lease (etcd_lease.h), so the two
// peers never serve at once while the clocks run at the same rate.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "ha/etcd_lease.h"

namespace relive::ha {

class LeaseKeeper {
 public:
  // Takes over `lease`, renewing it through its own EtcdLease on `endpoints`.
  LeaseKeeper(std::vector<std::string> endpoints, Lease lease);
  // `sink` gets the lease's conservative end now and after every renewal (from the renewing
  // thread): what the output buffers use as their deadline.
  void on_valid_until(std::function<void(std::chrono::steady_clock::time_point)> sink);
  ~LeaseKeeper();  // stops renewing (does not revoke: see release())
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // True while the lease is certainly ours.
  bool may_serve() const;
  // Etcd said the lease is gone (not merely unreachable).
  bool lost() const { return lost_; }
  std::chrono::milliseconds remaining() const;
  // Stops renewing and revokes the lease so that the other side may take over at once.
  Status release();

 private:
  void loop();

  std::vector<std::string> endpoints_;
  mutable std::mutex mu_;
  Lease lease_;
  std::atomic<bool> lost_{false};
  bool stop_ = false;
  std::condition_variable cv_;
  std::function<void(std::chrono::steady_clock::time_point)> sink_;
  std::thread thread_;
};

}  // namespace relive::ha
