#include "dirty/dirty_tracker.h"

#include <fmt/format.h>

#include <algorithm>

#include "dirty/seized_thread.h"
#include "dirty/uffd_abi.h"
#include "dirty/uffd_install.h"

namespace relive::dirty {
namespace {

// Pages whose write protection the kernel lifted on a write.
constexpr ScanQuery kWritten{abi::kPageIsWritten, 0, abi::kPageIsWritten, true};
// Pages neither present nor swapped nor protected-while-empty (arm() leaves a marker on every
// empty page): dropped by MADV_DONTNEED & co., which changes their content to zeros without a
// write. Protecting them puts the marker back, so each drop is reported once.
constexpr uint64_t kHeld = abi::kPageIsPresent | abi::kPageIsSwapped;
constexpr ScanQuery kDropped{kHeld, kHeld, kHeld, true};

}  // namespace

DirtyTracker::DirtyTracker(pid_t pid, int remote_fd, ino_t inode, PagemapScanner scanner,
                           std::vector<PageRange> tracked)
    : pid_(pid),
      remote_fd_(remote_fd),
      inode_(inode),
      scanner_(std::move(scanner)),
      tracked_(std::move(tracked)) {}

DirtyTracker::DirtyTracker(DirtyTracker&& o) noexcept
    : pid_(o.pid_),
      remote_fd_(std::exchange(o.remote_fd_, -1)),
      inode_(o.inode_),
      scanner_(std::move(o.scanner_)),
      tracked_(std::move(o.tracked_)) {}

DirtyTracker& DirtyTracker::operator=(DirtyTracker&& o) noexcept {
  if (this != &o) {
    if (armed()) (void)disarm();
    pid_ = o.pid_;
    remote_fd_ = std::exchange(o.remote_fd_, -1);
    inode_ = o.inode_;
    scanner_ = std::move(o.scanner_);
    tracked_ = std::move(o.tracked_);
  }
  return *this;
}

DirtyTracker::~DirtyTracker() {
  if (armed()) (void)disarm();
}

Result<DirtyTracker> DirtyTracker::arm(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(SeizedThread t, SeizedThread::seize(pid));
  // Read while a thread is held: other threads may still map and unmap, which is harmless (a
  // mapping created from now on is simply not tracked; one gone is skipped by install_uffd).
  RELIVE_ASSIGN_OR_RETURN(auto maps, tracee::read_maps(pid));
  RELIVE_ASSIGN_OR_RETURN(PagemapScanner scanner, PagemapScanner::open(pid));
  RELIVE_ASSIGN_OR_RETURN(InstalledUffd uffd, install_uffd(t, trackable_ranges(maps)));
  Status released = t.release();
  if (!released.ok()) return released.with_context("after arming dirty tracking");
  return DirtyTracker(pid, uffd.fd, uffd.inode, std::move(scanner), normalize(uffd.tracked));
}

Status DirtyTracker::check_still_ours() {
  RELIVE_ASSIGN_OR_RETURN(bool open, uffd_still_open(pid_, remote_fd_, inode_));
  if (open) return Status::Ok();
  remote_fd_ = -1;
  tracked_.clear();
  return Status::Aborted(fmt::format(
      "dirty tracking of process {} is lost: its userfaultfd was closed (exec, or the program "
      "closed descriptors it did not open)",
      pid_));
}

Result<std::vector<PageRange>> DirtyTracker::collect() {
  if (!armed()) return Status::InvalidArgument("collect() on an unarmed DirtyTracker");
  RELIVE_RETURN_IF_ERROR(check_still_ours());
  std::vector<PageRange> dirty, keep;
  for (const PageRange& r : tracked_) RELIVE_RETURN_IF_ERROR(scan_range(r, &dirty, &keep));
  tracked_ = normalize(std::move(keep));
  return normalize(std::move(dirty));
}

Status DirtyTracker::scan_range(const PageRange& range, std::vector<PageRange>* dirty,
                                std::vector<PageRange>* keep) {
  auto scan_both = [&](uint64_t start, uint64_t end) {
    Status st = scanner_->scan(start, end, kWritten, dirty);
    return st.ok() ? scanner_->scan(start, end, kDropped, dirty) : st;
  };
  Status st = scan_both(range.start, range.end());
  if (st.ok()) keep->push_back(range);
  if (!st.is_unsupported()) return st;
  // Something unregistered was mapped inside the range: scan the mappings there one by one and
  // give up (untrack) those that are not ours. The pages the failed scan did report are in
  // `dirty` already.
  RELIVE_ASSIGN_OR_RETURN(auto maps, tracee::read_maps(pid_));
  for (const tracee::Mapping& m : maps) {
    uint64_t start = std::max(m.start, range.start), end = std::min(m.end, range.end());
    if (start >= end) continue;
    st = scan_both(start, end);
    if (st.ok())
      keep->push_back({start, (end - start) / kPageSize});
    else if (!st.is_unsupported())
      return st;
  }
  return Status::Ok();
}

Status DirtyTracker::disarm() {
  if (!armed()) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(SeizedThread t, SeizedThread::seize(pid_));
  Status removed = remove_uffd(t, remote_fd_, inode_);
  Status released = t.release();
  RELIVE_RETURN_IF_ERROR(removed);
  RELIVE_RETURN_IF_ERROR(released);
  remote_fd_ = -1;
  tracked_.clear();
  return Status::Ok();
}

Status DirtyTracker::disarm_traced(const tracee::Task& task, tracee::Injector::At at) {
  if (!armed()) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(SeizedThread t, SeizedThread::adopt(task, at));
  Status removed = remove_uffd(t, remote_fd_, inode_);
  Status released = t.release();
  RELIVE_RETURN_IF_ERROR(removed);
  RELIVE_RETURN_IF_ERROR(released);
  remote_fd_ = -1;
  tracked_.clear();
  return Status::Ok();
}

}  // namespace relive::dirty
