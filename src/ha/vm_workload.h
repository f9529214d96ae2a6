// The QEMU kind of ProtectedWorkload: a VM relived starts from workload.command and protects with
// QEMU's own parts, no COLO (whose primary side fails in both QEMU builds here):
//   - guest RAM is a memory-backend-file shared with relived (workload.ram_dir, a tmpfs), so
//     relived reads it directly and finds changed pages by comparing it with a shadow copy
//     (ram_tracker.h);
//   - device state is saved by QEMU's migration to a file with x-ignore-shared, which leaves the
//     shared RAM out: ~1 MB, ~10 ms;
//   - the guest's network is a tap device relived creates (netdev id relive-net), routed to the
//     service address, whose outgoing packets relived holds in an NFQUEUE (workload_network.h,
//     output_buffer.h).
// An epoch: QMP stop, RAM diff into the shadow, device state to a file, QMP cont. The guest is
// frozen for that long; the shipping happens while it runs. The backup writes the committed RAM
// into its own RAM file and starts QEMU with `-incoming defer`, then `migrate-incoming` from the
// device-state file: the VM resumes exactly at the committed epoch.
//
// Disks (-drive in workload.command, ha_config.h): QEMU writes the primary's images at once; each
// epoch also carries the blocks the guest wrote since the last one, read at the cut through
// QEMU's dirty bitmaps and NBD server (disk_tracker.h), so they are part of the epoch like its
// RAM: the backup applies them to its raw copies only at commit, and output that depends on a
// write is released only after that commit. The first epoch after a backup joins carries the
// whole disks. A VM the backup restores runs on its copies (replica.h take_disk).
#pragma once

#include <memory>
#include <string>

#include "ha/ha_config.h"
#include "ha/protected_workload.h"
#include "ha/replica.h"
#include "relive/result.h"

namespace relive::ha {

struct VmPlace {
  std::string tap;        // the tap device relived created for the guest's NIC
  std::string peer;       // this relived's peer name (names the RAM files)
  std::string state_dir;  // QMP socket, QEMU's log, the epochs' device state
};

// Boots the VM.
Result<std::unique_ptr<ProtectedWorkload>> start_vm_workload(const WorkloadConfig& w,
                                                             const VmPlace& place);
// Resumes the VM at `replica`'s committed epoch.
Result<std::unique_ptr<ProtectedWorkload>> restore_vm_workload(const WorkloadConfig& w,
                                                               const VmPlace& place,
                                                               Replica* replica);

// The QEMU argv relived runs: workload.command plus the RAM backend on `ram_file`, the tap
// netdev, relived's QMP monitor, and, when `incoming`, paused waiting for a migration stream.
// `disk_files`, when given, replace the images of w.disks (one each, in order) by raw images.
Result<std::vector<std::string>> vm_launch_args(const WorkloadConfig& w,
                                                const std::string& ram_file, const std::string& tap,
                                                const std::string& qmp_socket, bool incoming,
                                                const std::vector<std::string>& disk_files);

}  // namespace relive::ha
