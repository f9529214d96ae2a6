// PagemapScanner: runs the PAGEMAP_SCAN ioctl on another process's /proc/PID/pagemap from the
// tracer side (no ptrace, the process keeps running). Each scan reports the pages of a range
// that match a category query and, with write-protect set, atomically write-protects them again
// (async userfaultfd WP), which is what makes "written since the last scan" exact.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "common/scoped_fd.h"
#include "dirty/page_range.h"
#include "relive/result.h"

namespace relive::dirty {

struct ScanQuery {
  uint64_t category_mask = 0;      // these categories must match...
  uint64_t category_inverted = 0;  // ...after these were inverted
  uint64_t return_mask = 0;
  bool write_protect = false;  // PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC
};

class PagemapScanner {
 public:
  // Opens /proc/PID/pagemap (bound to the process's address space at the time of opening).
  static Result<PagemapScanner> open(pid_t pid);

  // Appends the pages of [start, end) matching `q` to `out`, looping until the walk covers the
  // whole range. With write_protect, a range holding a mapping that is not registered for async
  // WP fails with Status::Unsupported; pages the kernel had already reported (and re-protected)
  // before it met that mapping are still appended to `out`, so none is lost.
  Status scan(uint64_t start, uint64_t end, const ScanQuery& q, std::vector<PageRange>* out) const;

 private:
  explicit PagemapScanner(ScopedFd fd, pid_t pid) : fd_(std::move(fd)), pid_(pid) {}
  ScopedFd fd_;
  pid_t pid_;
};

}  // namespace relive::dirty
