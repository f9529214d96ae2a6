// DirtyTracker: which pages of a running process were written since the last look. The building
// block of pre-copy migration (ship everything, then only what changed, until the rest is small)
// and of HA epochs, on a kernel without soft-dirty bits.
//
// arm() injects into the process (it keeps running; relive need not have launched it) an async
// write-protecting userfaultfd: every private writable mapping is registered and write-protected,
// and the kernel lifts the protection of a page on its first write, without a fault reaching
// anyone. collect() asks the kernel from the outside, through PAGEMAP_SCAN on /proc/PID/pagemap,
// for the pages whose protection was lifted, and protects them again in the same step. The
// userfaultfd lives in the process at a high descriptor number; disarm() closes it, which
// unregisters everything and leaves no trace.
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
  // unmapped and something else mapped there, or the process closed the userfaultfd, the pages
  // concerned can no longer be vouched for: they leave tracked() (the range narrows or goes) and
  // the call still succeeds. Aborted when tracking is lost entirely (the descriptor is gone, the
  // process exec'd); NotFound when the process is gone.
  Result<std::vector<PageRange>> collect();

  // The ranges registered at arm(), minus what collect() had to give up. Sorted, disjoint.
  const std::vector<PageRange>& tracked() const { return tracked_; }

  pid_t pid() const { return pid_; }
  int remote_fd() const { return remote_fd_; }  // the userfaultfd's number inside the process
  bool armed() const { return remote_fd_ >= 0; }

  // Seizes the process (running or group-stopped; it is left as it was), closes the userfaultfd
  // inside it and detaches. Afterwards the tracker is unarmed.
  Status disarm();
  // The same for a process the caller already holds in a ptrace stop of `task` (not a
  // syscall-entry stop): the caller keeps the thread, at a syscall-exit stop, registers intact.
  Status disarm_traced(const tracee::Task& task, tracee::Injector::At at);

 private:
  DirtyTracker(pid_t pid, int remote_fd, ino_t inode, PagemapScanner scanner,
               std::vector<PageRange> tracked);
  Status check_still_ours();
  Status scan_range(const PageRange& range, std::vector<PageRange>* dirty,
                    std::vector<PageRange>* keep);

  pid_t pid_ = 0;
  int remote_fd_ = -1;
  ino_t inode_ = 0;  // of the userfaultfd: tells it from a descriptor that reused its number
  std::optional<PagemapScanner> scanner_;
  std::vector<PageRange> tracked_;
};

}  // namespace relive::dirty
