#include "migrate/vm_convergence.h"

#include <fmt/format.h>

#include <algorithm>

namespace relive::migrate {

std::string VmConvergence::observe(const VmRamSample& s, std::chrono::milliseconds elapsed) {
  if (s.passes >= max_passes_)
    return fmt::format("{} pre-copy passes without converging", s.passes);
  if (elapsed >= max_time_)
    return fmt::format("pre-copy ran {:.1f} s without converging", elapsed.count() / 1000.0);
  if (s.passes <= last_pass_) return "";
  // A new pass began: QEMU has just measured the dirty rate over the previous one.
  last_pass_ = s.passes;
  double dirty = s.dirty_pages_rate * static_cast<double>(s.page_size);  // bytes/s
  best_link_ = std::max(best_link_, s.mbps * 1e6 / 8);                   // bytes/s
  double link = best_link_;
  losing_passes_ = (s.passes >= 2 && link > 0 && dirty >= 0.95 * link) ? losing_passes_ + 1 : 0;
  if (losing_passes_ >= 2) {
    return fmt::format("the guest dirties {:.1f} MB/s, the link moves {:.1f} MB/s", dirty / 1e6,
                       link / 1e6);
  }
  return "";
}

}  // namespace relive::migrate
