// One epoch's checkpoint of the protected workload, at the primary. Most epochs are fast ones
// (fast_capture.h: the tree frozen with ptrace, the pages written since the last epoch and the
// threads' registers copied, the base dump patched at the backup). The first epoch, and any epoch
// the fast capture cannot express, is a CRIU dump, described here: CRIU dumps the running
// workload (--leave-running, --tcp-established) into a scratch images directory; while CRIU
// still holds the workload frozen, its post-dump action script asks relived to scan the
// workload directory (dir_sync.h), so files, memory and descriptors are one consistent cut. Then
// the pages CRIU wrote are compared page by page (64-bit hashes) with those the backup already
// has, and only the pages that changed, the small non-memory images and the directory changes
// travel. This kernel has no soft-dirty bits, so CRIU cannot dump only dirty memory itself; the
// cost of a CRIU epoch therefore grows with the workload's resident memory (see the README).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/scoped_fd.h"
#include "ha/dir_sync.h"
#include "relive/result.h"

namespace relive::ha {

// Pages of one process that changed, as a run inside the dump's pages image.
struct PageRun {
  pid_t pid = 0;  // as in the images (the PID inside the workload's namespace)
  uint64_t vaddr = 0;
  uint64_t pages = 0;
  std::string file;  // pages image holding the run
  uint64_t offset = 0;
};

struct CapturedEpoch {
  uint64_t number = 0;
  bool full = false;
  std::string images_dir;
  std::vector<std::string> image_files;  // what to ship: everything but the pages images
  std::vector<PageRun> runs;
  uint64_t changed_pages = 0;
  uint64_t total_pages = 0;
  std::vector<DirChange> dir;
  uint64_t disk_bytes = 0;             // VMs: disk blocks among `runs` (vm_workload.h)
  std::chrono::nanoseconds frozen{0};  // CRIU's frozen time for this dump
  std::chrono::nanoseconds dump{0};    // the whole dump, CRIU start to exit
  // A fast epoch (fast_capture.h): image_files replace only their namesakes at the backup.
  bool patch = false;
  // images_dir belongs to this epoch alone: removed once it has been shipped.
  bool own_dir = false;
  // Why this epoch was not a fast one (empty for fast epochs).
  std::string slow_reason;
};

struct CaptureOptions {
  pid_t pid = 0;           // the workload's PID 1, as relived sees it
  std::string netns_path;  // where the workload lives; CRIU runs there too
  std::string work_dir;    // scratch: images, the hook's FIFOs, CRIU's logs
  std::string directory;   // the workload directory
  std::chrono::seconds criu_timeout{60};
};

class FastCapture;

class EpochCapture {
 public:
  static Result<EpochCapture> create(const CaptureOptions& options);
  EpochCapture(EpochCapture&&) noexcept;
  ~EpochCapture();

  // Dumps the workload and works out what the backup lacks (everything when `full`). On
  // failure the workload runs on (CRIU resumes it) and the Status quotes CRIU.
  Result<CapturedEpoch> capture(uint64_t number, bool full);
  // The backup committed the last capture: its pages and directory become the base.
  void committed();
  // The backup has nothing (a new backup, or the link broke mid-epoch).
  void reset();

  pid_t pid() const { return o_.pid; }

 private:
  explicit EpochCapture(CaptureOptions o);
  Status write_hook();
  Status diff_pages(CapturedEpoch* e, bool full);
  Result<CapturedEpoch> criu_epoch(uint64_t number, bool full, std::string slow_reason);
  Status hash_fast_pages(const CapturedEpoch& e);
  std::string images_dir(uint64_t number) const;

  CaptureOptions o_;
  std::string criu_;  // the wrapper that runs CRIU in the workload's namespace
  DirTracker dir_;
  ScopedFd hook_req_;  // FIFOs the action script talks through (both O_RDWR: never block)
  ScopedFd hook_rep_;
  using Hashes = std::map<pid_t, std::unordered_map<uint64_t, uint64_t>>;  // pid -> vaddr -> hash
  Hashes base_;
  Hashes pending_;
  // Fast epochs: the capture armed before the last CRIU dump (null when it could not be), why
  // there is none, and whether the epoch in flight was a fast one (its page hashes update base_).
  std::unique_ptr<FastCapture> fast_;
  std::string no_fast_;
  bool last_fast_ = false;
  Hashes fast_hashes_;
};

}  // namespace relive::ha
