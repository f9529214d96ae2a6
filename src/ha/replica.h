// The backup's copy of the protected workload: the last committed epoch, ready to restore. An
// epoch arrives in parts (images, changed pages, directory changes) into a staging area and is
// applied only by commit(): a half-received epoch is discarded by the next begin() and never
// touches the committed state. A full epoch (the first after a backup joins) replaces
// everything; its pages go straight into a new page store that commit() swaps in.
//
// Layout under the replica directory:
//   committed/        the committed epoch's CRIU images, without pages images
//   pages-<epoch>/    page store (transfer::PageCache) holding every page of the committed epoch
//   files/            the workload directory as of the committed epoch
//   staging/          the epoch being received
//   disk-N.raw        a VM's disk N as of the committed epoch (raw, what the guest sees);
//                     disk-N.raw.new while a full epoch is received
//   stage-<epoch>/    the committed epoch materialized ahead of a takeover (images/, files/);
//                     written as stage-<epoch>.tmp and complete only once renamed into place
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/scoped_fd.h"
#include "ha/dir_sync.h"
#include "relive/result.h"
#include "security/channel.h"
#include "transfer/page_cache.h"
#include "wire/migration_types.h"

namespace relive::ha {

// A VM's RAM travels in page rounds as the pages of this pid, its addresses being RAM offsets.
inline constexpr pid_t kVmRamPid = 1;
// A VM's disk N travels in the same page rounds as the pages of pid kVmDiskPidBase + N, its
// addresses being byte offsets in the disk (above any real PID: pid_max is at most 2^22).
inline constexpr pid_t kVmDiskPidBase = 1 << 30;
inline constexpr uint32_t kMaxVmDisks = 64;

class Replica {
 public:
  // Opens (and empties: a backup that restarts starts over with a full epoch) `dir`.
  static Result<std::unique_ptr<Replica>> open(const std::string& dir, uint64_t max_epoch_bytes);

  // Starts receiving `e`; discards whatever was staged.
  Status begin(const migration::HaEpoch& e);
  Status receive_images(security::Channel* channel, const migration::FileBatch& batch);
  Status receive_pages(security::Channel* channel);
  Status receive_dir(security::Channel* channel, const migration::HaDir& d);
  // Applies the staged epoch; Aborted if it is not `epoch` or a part is missing.
  Status commit(uint64_t epoch);

  bool has_epoch() const { return committed_.has_value(); }
  uint64_t committed_epoch() const { return committed_.value_or(0); }

  // Writes the committed epoch as complete CRIU images (pages images rebuilt from the page
  // store) into `images_out`, and its directory into `directory_out` (replacing what is there).
  // Uses the stage when it holds the committed epoch (moving it: it is consumed), otherwise
  // builds them from the replica directly.
  Status materialize(const std::string& images_out, const std::string& directory_out);

  // Warm images: materializes the committed epoch ahead of a takeover into stage-<epoch>, so
  // that a takeover only moves it into place. A no-op when the stage already holds the committed
  // epoch; removes older stages (a newer commit supersedes them). A stage interrupted half-way
  // stays a .tmp directory and is never used.
  Status stage();
  // The epoch the complete stage holds, if there is one (it may be older than the committed one,
  // and is then ignored by materialize()).
  std::optional<uint64_t> staged_epoch() const { return stage_epoch_; }
  // For a VM: the committed epoch's device state into `images_out`, and its RAM (`bytes`, every
  // page of it, or NotFound) into a new `ram_file`.
  Status materialize_vm(const std::string& images_out, const std::string& ram_file, uint64_t bytes);
  // For a VM: moves the committed copy of disk `index` (a raw image) to `path`, for the VM
  // restored from the committed epoch to run on. The replica has no copy of it afterwards (a
  // takeover consumes it; a backup starts over with a full epoch). NotFound when there is none.
  Status take_disk(uint32_t index, const std::string& path);
  // Disk bytes the last committed epoch carried.
  uint64_t last_disk_bytes() const { return last_disk_bytes_; }

 private:
  Replica(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  std::string staging() const { return dir_ + "/staging"; }
  std::string spill_path() const { return dir_ + "/pages.spill"; }
  std::string stage_dir(uint64_t epoch) const;
  std::string disk_path(uint32_t index) const;
  Status stage_disk(uint32_t index, uint64_t offset, std::string_view bytes);
  Status commit_disks();
  Status build(const std::string& images_out, const std::string& directory_out);
  Status use_stage(const std::string& images_out, const std::string& directory_out);
  Status check_staged_patch() const;

  std::string dir_;
  uint64_t max_bytes_;
  std::optional<uint64_t> committed_;
  std::unique_ptr<transfer::PageCache> pages_;  // the committed epoch's pages
  std::string pages_dir_;
  std::optional<uint64_t> stage_epoch_;  // a complete stage-<epoch> exists

  struct Staged {
    migration::HaEpoch epoch;
    bool images = false, pages = false, dir = false;
    // A delta epoch's pages: in memory up to max_epoch_bytes, the rest in the spill file
    // (pid, vaddr, offset in it, length) until the commit copies them into the page store.
    std::vector<std::tuple<pid_t, uint64_t, std::string>> page_runs;
    uint64_t page_bytes = 0;
    ScopedFd spill;
    std::vector<std::tuple<pid_t, uint64_t, uint64_t, uint64_t>> spilled;
    uint64_t spilled_bytes = 0;
    std::unique_ptr<transfer::PageCache> full_pages;  // full epochs write here directly
    std::string full_pages_dir;
    std::vector<DirChange> changes;
    std::map<uint32_t, ScopedFd> full_disks;  // full epochs: disk-N.raw.new, written directly
    std::vector<std::tuple<uint32_t, uint64_t, std::string>> disk_writes;  // delta epochs
    uint64_t disk_bytes = 0;
  };
  std::optional<Staged> staged_;
  uint64_t last_disk_bytes_ = 0;
};

}  // namespace relive::ha
