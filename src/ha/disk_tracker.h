// DiskTracker: which blocks of a protected VM's disks changed since the backup's last epoch, and
// what they held at the epoch's cut. QEMU keeps the record with its own block layer:
//   - a dirty bitmap per disk (4 KiB granularity) records every guest write since the last cut;
//   - at the cut (the guest is stopped, which drains and flushes QEMU's block I/O), one QMP
//     `transaction` closes the epoch's bitmaps (block-dirty-bitmap-disable) and opens the next
//     ones (block-dirty-bitmap-add): no write can fall between two epochs;
//   - relived reads the closed bitmap and the blocks it names through QEMU's NBD server (on a
//     Unix socket in relived's state directory, so local and without TLS): the NBD export of the
//     drive carries the bitmap as the metadata context qemu:dirty-bitmap:NAME, and reading the
//     blocks through the same export gives what the guest sees, raw or qcow2 alike.
// The blocks are read while the guest is still stopped (simpler than image fleecing, which would
// let it run on: copy-before-write + snapshot-access): the frozen time grows with the blocks the
// epoch wrote, which at 40 epochs a second is little. A full epoch (protection start, or after a
// break) first copies each whole disk while the guest runs, with a fresh bitmap already
// recording; the cut then reads the blocks written during the copy over it, so the copy is the
// disk at the cut. libnbd rather than qemu-img or qemu-io as programs: a process start per epoch
// would be most of an epoch's frozen time.
//
// The backup stores each disk as a raw image of what the guest sees (replica.h); a VM it
// restores runs on that copy whatever the primary's format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "drivers/qemu/qmp_client.h"
#include "ha/ha_config.h"
#include "relive/result.h"

namespace relive::ha {

// `bytes` of disk `disk` from byte `offset`, held in `file` at `file_offset`. 4 KiB aligned.
struct DiskRun {
  uint32_t disk = 0;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  std::string file;
  uint64_t file_offset = 0;
};

class DiskTracker {
 public:
  // For `disks` of the VM behind `qmp`: finds their block nodes and sizes (query-block) and
  // starts QEMU's NBD server on `work_dir`/nbd.sock. InvalidArgument for a disk whose size is
  // not a multiple of 4 KiB.
  static Result<DiskTracker> create(qemu::QmpClient* qmp, const std::vector<VmDiskConfig>& disks,
                                    const std::string& work_dir);
  DiskTracker(DiskTracker&&) = default;
  DiskTracker& operator=(DiskTracker&&) = default;

  // Guest running, before a full epoch's cut: drops the bitmaps, starts new ones, and copies
  // every disk into `work_dir`/disk-N.full.
  Status copy_all(qemu::QmpClient* qmp);
  // Guest stopped: closes the epoch's bitmaps and opens the next, and reads the blocks the
  // closed ones name. When `full` (after copy_all), writes them over the copies and returns the
  // whole copies; otherwise returns them, packed into `work_dir`/disk-N.delta. On failure the
  // bitmaps are in an unknown state: the next capture must be full.
  Result<std::vector<DiskRun>> capture(qemu::QmpClient* qmp, bool full);

  // The backup committed the epoch: a full epoch's copies (whole disks) are no longer needed.
  void drop_copies();

  size_t count() const { return disks_.size(); }
  bool empty() const { return disks_.empty(); }

 private:
  struct Disk {
    std::string id;    // the drive's id (QEMU's device name)
    std::string node;  // its top block node
    uint64_t size = 0;
  };
  DiskTracker() = default;
  std::string socket() const { return work_dir_ + "/nbd.sock"; }
  std::string copy_file(size_t i, bool full) const;
  Status read_dirty(qemu::QmpClient* qmp, size_t i, const std::string& bitmap, bool full,
                    std::vector<DiskRun>* out);

  std::vector<Disk> disks_;
  std::string work_dir_;
  uint64_t generation_ = 0;
  std::string bitmap_;  // the open bitmap's name on every disk; "" before a full epoch
};

}  // namespace relive::ha
