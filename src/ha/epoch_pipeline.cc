#include "ha/epoch_pipeline.h"

#include "common/file_util.h"
#include "common/logging.h"

namespace relive::ha {
namespace m = relive::migration;

EpochPipeline::EpochPipeline(std::unique_ptr<transfer::Link> link, Options options)
    : link_(std::move(link)), o_(std::move(options)), thread_([this] { run(); }) {}

EpochPipeline::~EpochPipeline() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (const Pending& p : queue_) {
    if (p.epoch.own_dir) (void)remove_tree(p.epoch.images_dir);
  }
}

bool EpochPipeline::has_room() const {
  std::lock_guard<std::mutex> l(mu_);
  // Committed epochs not yet taken count: the owner acts on a commit before its next capture.
  return !failure_ && !stop_ &&
         queue_.size() + (shipping_ ? 1 : 0) + committed_.size() < o_.max_in_flight;
}

size_t EpochPipeline::in_flight() const {
  std::lock_guard<std::mutex> l(mu_);
  return queue_.size() + (shipping_ ? 1 : 0);
}

void EpochPipeline::submit(CapturedEpoch e, Clock::time_point started) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back({std::move(e), started});
  }
  cv_.notify_all();
}

std::vector<EpochPipeline::Committed> EpochPipeline::take_committed() {
  std::lock_guard<std::mutex> l(mu_);
  return std::exchange(committed_, {});
}

std::optional<Status> EpochPipeline::failure() const {
  std::lock_guard<std::mutex> l(mu_);
  return failure_;
}

Result<std::unique_ptr<transfer::Link>> EpochPipeline::drain() {
  {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return failure_ || (queue_.empty() && !shipping_); });
    if (failure_) return *failure_;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  return std::move(link_);
}

void EpochPipeline::abandon(std::unique_ptr<EpochPipeline> p) {
  if (p == nullptr) return;
  {
    std::lock_guard<std::mutex> l(p->mu_);
    p->o_.wake = nullptr;
    p->stop_ = true;
  }
  p->cv_.notify_all();
  std::thread([p = std::move(p)]() mutable { p.reset(); }).detach();
}

void EpochPipeline::run() {
  Clock::time_point last_sent = Clock::now();
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait_until(l, last_sent + o_.heartbeat,
                   [this] { return stop_ || failure_ || !queue_.empty(); });
    if (stop_ || failure_) return;
    Status result = Status::Ok();
    std::optional<Pending> p;
    if (!queue_.empty()) {
      p = std::move(queue_.front());
      queue_.pop_front();
      shipping_ = true;
    } else if (Clock::now() < last_sent + o_.heartbeat) {
      continue;
    }
    uint64_t committed = last_committed_;
    l.unlock();
    ShippedEpoch shipped;
    if (p) {
      Result<ShippedEpoch> s = ship_epoch(link_.get(), p->epoch, o_.primary);
      result = s.status();
      if (s.ok()) shipped = *s;
      if (p->epoch.own_dir) (void)remove_tree(p->epoch.images_dir);
    } else {
      result = link_->call(m::HaHeartbeat{committed}).status();
    }
    last_sent = Clock::now();
    l.lock();
    shipping_ = false;
    if (!result.ok()) {
      failure_ = result;
    } else if (p) {
      last_committed_ = p->epoch.number;
      committed_.push_back({std::move(p->epoch), shipped, p->started, last_sent});
    }
    cv_.notify_all();  // drain()
    // Under the lock, so that abandon() (which clears it) orders with the call.
    if ((p || !result.ok()) && o_.wake) o_.wake();
  }
}

}  // namespace relive::ha
