// EpochPipeline: the primary's link to the backup, on a thread of its own, so that epoch N+1 is
// captured while epoch N travels. Captured epochs are shipped in order (epoch_shipper.h), at
// most `max_in_flight` of them submitted and not yet acknowledged; when the backup falls behind,
// has_room() stays false and the primary captures nothing more (its workload runs on, its output
// held), so no output is ever released before the backup holds the epoch that produced it. The
// shipper also sends the heartbeats while no epoch is under way (the link is not thread-safe).
//
// The pipeline touches nothing of its owner: committed epochs are collected with
// take_committed() by the owner's thread, which releases their output; wake() (if set) only
// tells the owner to look. The first failure stops the pipeline; what was in flight is lost and
// the owner starts over with a full epoch. abandon() hands a pipeline whose shipper may be
// blocked (a silent backup: until the channel's timeout) to a background thread to finish.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ha/epoch_capture.h"
#include "ha/epoch_shipper.h"
#include "relive/result.h"
#include "transfer/link.h"

namespace relive::ha {

class EpochPipeline {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::string primary;  // this peer's name, sent with every epoch
    size_t max_in_flight = 2;
    std::chrono::milliseconds heartbeat{100};
    // Called from the shipper, with the pipeline's lock held, when an epoch committed or the
    // pipeline failed: it must not call back into the pipeline.
    std::function<void()> wake;
  };
  // An epoch the backup acknowledged.
  struct Committed {
    CapturedEpoch epoch;
    ShippedEpoch shipped;
    Clock::time_point started;    // when its capture began
    Clock::time_point committed;  // when the backup's acknowledgement arrived
  };

  EpochPipeline(std::unique_ptr<transfer::Link> link, Options options);
  // Stops and waits for the shipper (at most the channel's timeout if it is blocked).
  ~EpochPipeline();
  EpochPipeline(const EpochPipeline&) = delete;
  EpochPipeline& operator=(const EpochPipeline&) = delete;

  // Fewer than max_in_flight epochs are queued, shipping, or committed but not yet taken.
  bool has_room() const;
  size_t in_flight() const;
  // Queues `e` (has_room() must be true). Its images directory, if it is the epoch's own, is
  // removed once it is shipped.
  void submit(CapturedEpoch e, Clock::time_point started);
  // The epochs committed since the last call, in order.
  std::vector<Committed> take_committed();
  // Why the pipeline stopped, once it has.
  std::optional<Status> failure() const;

  // Waits until every submitted epoch is committed (or the pipeline failed), stops the shipper
  // and hands the idle link back: the planned switchover talks on it.
  Result<std::unique_ptr<transfer::Link>> drain();

  // Lets a background thread wait for `p`'s shipper and destroy it; `wake` is not called again.
  static void abandon(std::unique_ptr<EpochPipeline> p);

 private:
  void run();
  struct Pending {
    CapturedEpoch epoch;
    Clock::time_point started;
  };

  std::unique_ptr<transfer::Link> link_;
  Options o_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // submitted, not yet shipped
  bool shipping_ = false;      // the shipper holds one epoch taken from the queue
  std::vector<Committed> committed_;
  uint64_t last_committed_ = 0;
  std::optional<Status> failure_;
  bool stop_ = false;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace relive::ha
