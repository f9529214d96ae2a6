#include "transfer/hash_keeper.h"

#include <utility>

#include "common/check.h"

namespace relive::transfer {

Result<std::unique_ptr<HashKeeper>> HashKeeper::start(pid_t pid, std::chrono::milliseconds period) {
  RELIVE_ASSIGN_OR_RETURN(dirty::DirtyTracker tracker, dirty::DirtyTracker::arm(pid));
  std::unique_ptr<HashKeeper> k(new HashKeeper(pid, std::move(tracker), period));
  k->thread_ = std::thread(&HashKeeper::run, k.get());
  return k;
}

HashKeeper::HashKeeper(pid_t pid, dirty::DirtyTracker tracker, std::chrono::milliseconds period)
    : pid_(pid), tracker_(std::move(tracker)), period_(period) {}

HashKeeper::~HashKeeper() {
  stop_thread();
  if (tracker_.armed()) (void)tracker_.disarm();
}

void HashKeeper::run() {
  Result<PageHashTable> first = PageHashTable::of_anonymous_memory(pid_);
  std::unique_lock<std::mutex> lock(mu_);
  if (!first.ok()) {
    status_ = first.status();
  } else {
    table_.emplace(std::move(*first));
    while (!stop_) {
      uint64_t serving = asked_;
      lock.unlock();
      Status st = catch_up();
      lock.lock();
      if (!st.ok()) {
        status_ = st;
        break;
      }
      done_ = serving;
      cv_.notify_all();
      cv_.wait_for(lock, period_, [&] { return stop_ || asked_ != done_; });
    }
  }
  stop_ = true;  // the thread is over: refresh() must not wait for it
  cv_.notify_all();
}

Status HashKeeper::catch_up() {
  RELIVE_ASSIGN_OR_RETURN(std::vector<dirty::PageRange> written, tracker_.collect());
  return table_->rehash(pid_, written);
}

bool HashKeeper::hashed_once() {
  std::lock_guard<std::mutex> lock(mu_);
  return table_.has_value() || stop_;
}

Status HashKeeper::refresh() {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t want = ++asked_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return stop_ || done_ >= want; });
  if (done_ >= want) return Status::Ok();
  return status_.ok() ? Status::Aborted("the hash keeper stopped") : status_;
}

void HashKeeper::stop_thread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

Status HashKeeper::freeze() {
  stop_thread();
  RELIVE_RETURN_IF_ERROR(status_);
  if (!table_) return Status::Aborted("the hash keeper stopped before its first pass");
  RELIVE_ASSIGN_OR_RETURN(last_, tracker_.collect());
  vouched_ = tracker_.tracked();
  frozen_ = true;
  return Status::Ok();
}

Result<PageHashTable> HashKeeper::table() {
  RELIVE_CHECK(frozen_ && table_, "HashKeeper::table() without a successful freeze()");
  RELIVE_RETURN_IF_ERROR(table_->rehash(pid_, last_));
  table_->keep_only(vouched_);
  frozen_ = false;
  PageHashTable out = std::move(*table_);
  table_.reset();
  return out;
}

}  // namespace relive::transfer
