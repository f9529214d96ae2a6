// ProtectedWorkload: what the HA primary checkpoints every epoch, whatever it is. A process tree
// (process_workload.h: CRIU dumps it) and a QEMU virtual machine (vm_workload.h: stopped for a
// moment, its RAM diffed, its devices saved by QEMU) both produce a CapturedEpoch that
// epoch_shipper.h sends and the backup's Replica applies the same way.
//
// Destroying the object leaves the workload running (relived stopping is not a failure of the
// service); kill() is how the node stops it (fencing, switchover).
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "ha/epoch_capture.h"
#include "relive/result.h"

namespace relive::ha {

class ProtectedWorkload {
 public:
  virtual ~ProtectedWorkload() = default;

  // The process relived watches: the tree's PID 1, or QEMU.
  virtual pid_t pid() const = 0;
  virtual bool alive() = 0;
  // SIGKILL, and reaped.
  virtual void kill() = 0;

  // One consistent checkpoint and what the backup lacks of it (everything when `full`). On
  // failure the workload runs on.
  virtual Result<CapturedEpoch> capture(uint64_t number, bool full) = 0;
  // The backup committed the last capture: it becomes the base of the next delta.
  virtual void committed() = 0;
  // The backup has nothing (a new backup, or the link broke mid-epoch).
  virtual void reset() = 0;
};

}  // namespace relive::ha
