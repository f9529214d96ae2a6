// FastCapture: an HA epoch that costs what changed, not what exists. CRIU dumps the protected
// tree once (the base); every later epoch freezes the tree with ptrace, copies the pages written
// since the last epoch (dirty/dirty_tracker.h) and every thread's registers, FPU state and signal
// mask (thread_state.h), and checks that nothing else CRIU dumped has changed since the base: the
// process and thread sets, a fingerprint of each process's kernel state (state_fingerprint.h),
// its interval timers and signal handlers (read by injected calls, compared with the base's core
// image), and that every private writable mapping is tracked. Two changes are captured rather
// than refused: offsets of regular files, and the sequence numbers, queues and windows of
// established TCP connections (read in repair mode, tcp_stream_capture.h, and written into the
// base's tcp-stream images; the caller holds the workload's input meanwhile). When all holds, the
// backup restores the base dump with the latest pages (the pagemaps are rewritten to include
// pages the base did not hold) and TCP streams, and then gives every thread its captured state.
// When anything does not, capture() says what, and the caller takes a CRIU dump instead: the slow
// path, which is also the next base.
//
// The tracker is armed before the base dump, so every write after the dump's cut is reported
// (writes between arming and the cut are reported too, and shipped again: harmless).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dirty/dirty_tracker.h"
#include "dirty/seized_thread.h"
#include "drivers/criu/core_image.h"
#include "drivers/criu/page_image.h"
#include "ha/epoch_capture.h"
#include "ha/state_fingerprint.h"
#include "ha/thread_state.h"
#include "relive/result.h"
#include "tracee/process_info.h"

namespace relive::ha {

// The first writable shared mapping among `maps` whose contents CRIU saves in the dump (anonymous
// shared memory, SysV shm, memfd, tmpfs files, deleted files), described; nullopt when there is
// none. The tracker sees only private memory, so a process with one takes CRIU dumps.
std::optional<std::string> shared_memory_written(const std::vector<tracee::Mapping>& maps);

class FastCapture {
 public:
  // Starts tracking writes in every process of the tree at `root` (global PID). Call it before
  // the CRIU dump meant to become the base.
  static Result<std::unique_ptr<FastCapture>> arm(pid_t root);

  // At the dump's cut (CRIU's post-dump step, the tree frozen): fingerprints every process.
  Status note_cut();
  // After the dump: reads its pagemaps and the leaders' core images from `images_dir`. On
  // failure the dump cannot be a base (the caller drops this object).
  Status note_images(const std::string& images_dir);
  // The dump noted above committed at the backup: fast epochs may follow.
  void base_committed();
  // The last fast epoch committed.
  void fast_committed();
  // The backup has nothing: no fast epoch until a new base commits.
  void forget_base() { ready_ = false; }
  bool ready() const { return ready_; }

  using DirScan = std::function<Result<std::vector<DirChange>>(const std::vector<pid_t>& tree)>;
  // One fast epoch into `e` (its images_dir must exist and be empty). Aborted with the reason
  // when the epoch cannot be a fast one (nothing is left half-done in the tree; the caller takes
  // a CRIU dump); the tree runs on either way.
  Status capture(CapturedEpoch* e, const DirScan& scan);

  FastCapture(const FastCapture&) = delete;
  FastCapture& operator=(const FastCapture&) = delete;
  ~FastCapture() = default;

 private:
  struct Proc {
    pid_t pid = 0;     // global
    pid_t ns_pid = 0;  // in the workload's namespace: the images' numbering
    uint64_t syscall_insn = 0;
    std::unique_ptr<dirty::DirtyTracker> tracker;
    std::map<pid_t, pid_t> ns_tid;  // global tid -> tid in the namespace, at the cut
    ProcessFingerprint fp;          // at the base's cut, without the mappings' flags
    std::string base_vma_flags;     // the mappings' flags at the base's cut (read_vma_flags)
    criu::PagemapImage base_map;
    std::vector<criu::VaddrRange> base_present;
    criu::TaskCoreState core;
    // Pages written since the base that the base's pagemap lacks: committed, and with the
    // epoch in flight.
    std::vector<criu::VaddrRange> extra, pending_extra;
    // The base's tcp-stream image of each established TCP socket, by fd, and its file name.
    std::map<int, std::pair<std::string, std::string>> tcp_base;
    std::set<int> tcp_patched, pending_tcp;  // fds whose patched image the backup holds / will
  };
  // Image files of the epoch: name, content.
  using Files = std::vector<std::pair<std::string, std::string>>;
  // Fills `state` and `files` with what moved since the base that the backup can be told
  // (offsets, TCP streams); Aborted with the reason when something else moved.
  Status capture_changes(Proc& p, const ProcessFingerprint& now, FastState* state, Files* files);
  explicit FastCapture(pid_t root) : root_(root) {}
  Status check_kernel_state(Proc& p, dirty::SeizedThread& leader);
  // Aborted when a process's mappings' flags differ from the base's.
  Status check_vma_flags();

  pid_t root_;
  std::vector<Proc> procs_;
  bool noted_ = false;  // note_cut() and note_images() succeeded
  bool ready_ = false;
  // The epoch's pages, copied while frozen and written out after: kept between epochs so that
  // a copy does not fault in fresh memory for every page (shrunk when far larger than needed).
  std::string pages_;
  // When the mappings' flags may be read again (capture()).
  std::chrono::steady_clock::time_point next_flags_check_{};
};

}  // namespace relive::ha
