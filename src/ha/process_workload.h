// The process-tree kind of ProtectedWorkload: relived starts workload.command as PID 1 of a new
// PID namespace in the workload's network namespace (workload_launch.h), and CRIU dumps the tree
// every epoch (epoch_capture.h). After a failover the backup restores the committed epoch's images
// with CRIU in its own copy of that network namespace.
#pragma once

#include <memory>
#include <string>

#include "ha/ha_config.h"
#include "ha/output_buffer.h"
#include "ha/protected_workload.h"
#include "ha/replica.h"
#include "relive/result.h"

namespace relive::ha {

// Starts the workload in the namespace at `netns_path`; epochs are staged under `state_dir`.
Result<std::unique_ptr<ProtectedWorkload>> start_process_workload(const WorkloadConfig& w,
                                                                  const std::string& netns_path,
                                                                  const std::string& state_dir);

// Restores `replica`'s committed epoch. `input` is held while CRIU rebuilds the TCP sockets, so
// clients' retransmissions wait for them rather than meet a reset.
Result<std::unique_ptr<ProtectedWorkload>> restore_process_workload(const WorkloadConfig& w,
                                                                    const std::string& netns_path,
                                                                    const std::string& state_dir,
                                                                    Replica* replica,
                                                                    OutputBuffer* input);

}  // namespace relive::ha
