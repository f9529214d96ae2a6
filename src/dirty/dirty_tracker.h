// DirtyTracker: which pages of a running process were written since the last look. The building
// block of pre-copy migration (ship everything, then only what changed, until the rest is small)
// and of HA epochs, on a kernel without soft-dirty bits.
//
// arm() injects into the process (it keeps running; relive need not have launched it) an async
// write-protecting userfaultfd: every private writable mapping is registered and write-protected,
// and the kernel lifts the protection of a page on its first write, without a fault reaching
// anyone. collect() asks the kernel from the outside, through PAGEMAP_SCAN on /proc/PID/pagemap,
// for the pages whose protection was lifted, and protects them again in the same step. The
// userfaultfd is created inside the process (a userfaultfd watches the memory of whoever makes
// it), then relive takes a duplicate (pidfd_getfd) and closes the process's own: while armed the
// process holds no extra descriptor (nothing for CRIU to trip over, no number taken from the
// program), and disarm() only closes relive's copy, which unregisters everything without
// touching the process — so it works on stopped, frozen or traced processes alike.
//
// Safety contract: a page inside tracked() whose content changed since the previous collect()
// (or arm()) is in the next collect()'s result: written pages, and pages that were dropped
// (madvise(MADV_DONTNEED), which zero-fills them without a write). Pages outside tracked() are
// unknown to the tracker: callers must treat them as always dirty. tracked() only shrinks (see
// collect()); mappings created after arm() are never in it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <vector>

#include "common/scoped_fd.h"
#include "dirty/page_range.h"
#include "dirty/pagemap_scan.h"
#include "relive/result.h"
#include "tracee/inject.h"
#include "tracee/task.h"

namespace relive::dirty {

class DirtyTracker {
 public:
  // Starts tracking `pid`. NotFound when there is no such process; Unsupported when another
  // tracer holds it (it is left alone) or the kernel lacks async userfaultfd WP. Works on a
  // running process and on one in a SIGSTOP group-stop (which stays stopped). On failure nothing
  // is left in the process.
  static Result<DirtyTracker> arm(pid_t pid);

  DirtyTracker(DirtyTracker&&) noexcept;
  DirtyTracker& operator=(DirtyTracker&&) noexcept;
  DirtyTracker(const DirtyTracker&) = delete;
  DirtyTracker& operator=(const DirtyTracker&) = delete;
  // Best effort disarm() if still armed and the process still exists.
  ~DirtyTracker();

  // The pages changed since arm() or the previous collect(), sorted and merged, each re-protected
  // atomically as it is reported. No ptrace; the process keeps running. If a tracked range was
  // unmapped and something else mapped there (or the process exec'd), the pages concerned can
  // no longer be vouched for: they leave tracked() (the range narrows or goes) and the call still
  // succeeds. NotFound when the process is gone.
  Result<std::vector<PageRange>> collect();

  // The ranges registered at arm(), minus what collect() had to give up. Sorted, disjoint.
  const std::vector<PageRange>& tracked() const { return tracked_; }

  pid_t pid() const { return pid_; }
  bool armed() const { return uffd_.valid(); }

  // Closes relive's copy of the userfaultfd: the process's mappings are unregistered and their
  // protection lifted. No ptrace: any process state will do. Afterwards the tracker is unarmed.
  Status disarm();

 private:
  DirtyTracker(pid_t pid, ScopedFd uffd, PagemapScanner scanner, std::vector<PageRange> tracked);
  Status scan_range(const PageRange& range, std::vector<PageRange>* dirty,
                    std::vector<PageRange>* keep);

  pid_t pid_ = 0;
  ScopedFd uffd_;  // relive's duplicate of the process's userfaultfd
  std::optional<PagemapScanner> scanner_;
  std::vector<PageRange> tracked_;
};

}  // namespace relive::dirty
