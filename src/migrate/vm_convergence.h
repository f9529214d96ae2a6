// When a VM's pre-copy stops converging (relive migrate --vm --strategy auto): QEMU's pre-copy
// resends what the guest dirtied during the previous pass until what is left fits in the
// downtime limit. A guest that dirties memory as fast as the link moves it never gets there;
// post-copy then ends the migration in bounded time (the guest runs at the destination while its
// remaining pages are pulled on demand).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace relive::migrate {

// One query-migrate answer of an active pre-copy ("ram" member).
struct VmRamSample {
  int passes = 0;               // dirty-sync-count: memory passes begun
  uint64_t remaining = 0;       // bytes still to send
  double dirty_pages_rate = 0;  // pages per second the guest dirties (measured by QEMU)
  uint64_t page_size = 4096;
  double mbps = 0;  // megabits per second the migration stream moves
};

class VmConvergence {
 public:
  // Gives up on pre-copy after `max_passes` passes or `max_time`, whichever comes first, and
  // earlier when two passes in a row show the guest dirtying at least as fast as the link can
  // move: the best rate the stream reached so far. (A pass's own rate is only what it had to
  // send: once a quiet guest's pre-copy is nearly done the link idles, and its rate falls to the
  // dirty rate without the link being the limit.)
  VmConvergence(int max_passes, std::chrono::milliseconds max_time)
      : max_passes_(max_passes), max_time_(max_time) {}

  // Fed each sample of an active pre-copy with the time since it began: why to switch to
  // post-copy now, or "" to let pre-copy go on.
  std::string observe(const VmRamSample& s, std::chrono::milliseconds elapsed);

 private:
  int max_passes_;
  std::chrono::milliseconds max_time_;
  int last_pass_ = 0;
  int losing_passes_ = 0;  // consecutive passes whose dirty rate reached the link's rate
  double best_link_ = 0;   // bytes/s: the fastest the stream has moved
};

}  // namespace relive::migrate
