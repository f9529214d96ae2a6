#include "dirty/dirty_tracker.h"

#include <fmt/format.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

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

DirtyTracker::DirtyTracker(pid_t pid, ScopedFd uffd, PagemapScanner scanner,
                           std::vector<PageRange> tracked)
    : pid_(pid),
      uffd_(std::move(uffd)),
      scanner_(std::move(scanner)),
      tracked_(std::move(tracked)) {}

DirtyTracker::DirtyTracker(DirtyTracker&& o) noexcept
    : pid_(o.pid_),
      uffd_(std::move(o.uffd_)),
      scanner_(std::move(o.scanner_)),
      tracked_(std::move(o.tracked_)) {}

DirtyTracker& DirtyTracker::operator=(DirtyTracker&& o) noexcept {
  if (this != &o) {
    pid_ = o.pid_;
    uffd_ = std::move(o.uffd_);
    scanner_ = std::move(o.scanner_);
    tracked_ = std::move(o.tracked_);
  }
  return *this;
}

DirtyTracker::~DirtyTracker() = default;

namespace {

// A duplicate, in this process, of descriptor `fd` of process `pid`.
Result<ScopedFd> take_descriptor(pid_t pid, int fd) {
  ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) return PosixError("pidfd_open " + std::to_string(pid), errno);
  ScopedFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!dup.valid()) return PosixError("pidfd_getfd of the userfaultfd", errno);
  return dup;
}

}  // namespace

Result<DirtyTracker> DirtyTracker::arm(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(SeizedThread t, SeizedThread::seize(pid));
  // Read while a thread is held: other threads may still map and unmap, which is harmless (a
  // mapping created from now on is simply not tracked; one gone is skipped by install_uffd).
  RELIVE_ASSIGN_OR_RETURN(auto maps, tracee::read_maps(pid));
  RELIVE_ASSIGN_OR_RETURN(PagemapScanner scanner, PagemapScanner::open(pid));
  RELIVE_ASSIGN_OR_RETURN(InstalledUffd uffd, install_uffd(t, trackable_ranges(maps)));
  // Ours from now on; the process's own descriptor goes (with ours gone too on failure, the
  // last reference drops and the kernel unregisters everything).
  Result<ScopedFd> held = take_descriptor(pid, uffd.fd);
  Status closed = remove_uffd(t, uffd.fd, uffd.inode);
  Status released = t.release();
  if (!held.ok()) return held.status();
  RELIVE_RETURN_IF_ERROR(closed);
  if (!released.ok()) return released.with_context("after arming dirty tracking");
  return DirtyTracker(pid, std::move(*held), std::move(scanner), normalize(uffd.tracked));
}

Result<std::vector<PageRange>> DirtyTracker::collect() {
  if (!armed()) return Status::InvalidArgument("collect() on an unarmed DirtyTracker");
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
  uffd_.reset();
  tracked_.clear();
  return Status::Ok();
}

}  // namespace relive::dirty
