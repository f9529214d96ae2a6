// HashKeeper: the hashes of a process's anonymous memory kept current while it runs, so that
// when it stops only the pages written since the last look are left to hash. CR/TR-Motion's
// switch-over compares the source's memory with the replayed process's page by page; hashing
// either whole at the freeze made the downtime grow with the memory size.
//
// start() arms a DirtyTracker on the process (an async write-protecting userfaultfd, see
// dirty/dirty_tracker.h) and then, on its own thread, hashes every page of its private anonymous
// mappings once and, every `period`, the pages written since. Because the tracker is armed
// before the first page is read, a page written at any time after its hash was taken is in a
// later collect(): once the process is stopped, freeze() takes the last collect() and the table
// is exact for every page the tracker vouches for (the rest lose their hash and are read at the
// check, like pages mapped after start()).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "dirty/dirty_tracker.h"
#include "dirty/page_range.h"
#include "relive/result.h"
#include "transfer/page_hashes.h"

namespace relive::transfer {

// How often CR/TR's keepers catch up with what their process wrote, at both ends.
inline constexpr std::chrono::milliseconds kHashKeeperPeriod{50};

class HashKeeper {
 public:
  // Arms dirty tracking of `pid` (it seizes the process for a moment: call it before another
  // tracer holds it; a process in a SIGSTOP group-stop stays stopped) and starts hashing.
  // Unsupported where the kernel cannot track writes; NotFound when there is no such process.
  static Result<std::unique_ptr<HashKeeper>> start(pid_t pid, std::chrono::milliseconds period);

  HashKeeper(const HashKeeper&) = delete;
  HashKeeper& operator=(const HashKeeper&) = delete;
  // Stops the thread and disarms the tracker (best effort): the process's mappings are as they
  // were before start(). Disarming walks every tracked page table entry (~0.1 s a GiB): keep the
  // keeper until the process is gone or no longer waited for.
  ~HashKeeper();

  // Hashes what was written since the last look, now, and returns when done (before a freeze,
  // so that the freeze is left with only what the last moments wrote).
  Status refresh();

  // Call once the process is stopped (it must not run again until table() returned): the
  // keeper's thread ends and the last collect() is taken. Quick: the hashing is left to table().
  Status freeze();

  // The table after freeze(): the pages of the last collect() hashed again, and every page the
  // tracker could not vouch for without a hash. Once.
  Result<PageHashTable> table();
  // After freeze(): how many pages its collect() found written since the keeper's last look.
  uint64_t pages_at_freeze() const { return dirty::page_count(last_); }

  pid_t pid() const { return pid_; }
  // Whether the first pass over the whole memory is done (or the thread ended).
  bool hashed_once();

 private:
  HashKeeper(pid_t pid, dirty::DirtyTracker tracker, std::chrono::milliseconds period);
  void run();
  // One collect() and the rehash of what it reported (the keeper's thread or after it ended).
  Status catch_up();
  void stop_thread();

  pid_t pid_;
  dirty::DirtyTracker tracker_;
  std::chrono::milliseconds period_;
  std::optional<PageHashTable> table_;  // built by the thread; then owned by whoever holds mu_
  std::vector<dirty::PageRange> last_;  // freeze()'s collect(), rehashed by table()
  std::vector<dirty::PageRange> vouched_;
  Status status_;  // the thread's first failure: the table is then not to be trusted

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t asked_ = 0;  // refresh() requests (guarded by mu_)
  uint64_t done_ = 0;   // requests served (guarded by mu_)
  bool frozen_ = false;
  std::thread thread_;
};

}  // namespace relive::transfer
