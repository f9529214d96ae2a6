// Starting the protected workload: relived runs workload.command as PID 1 of a new PID namespace
// (so that a restore on the other host gets back every PID without clashing with anything
// there: CRIU recreates the namespace), inside the workload's network namespace, as a session
// leader (CRIU needs the session inside the dumped tree), in workload.directory, with stdin from
// /dev/null and stdout/stderr appended to relive-workload.log in that directory (which is
// replicated with every epoch, so the restored descriptors find the file as it was).
// relived is a child subreaper, so the workload, and a workload restored by CRIU, is its child.
// workload_alive() and kill_workload() serve every kind (process_workload.h: the tree's PID 1;
// vm_workload.h: QEMU).
#pragma once

#include <sys/types.h>

#include <string>

#include "ha/ha_config.h"
#include "relive/result.h"

namespace relive::ha {

inline constexpr const char* kWorkloadLog = "relive-workload.log";

// Starts the workload; returns its PID as this process sees it.
Result<pid_t> start_workload(const WorkloadConfig& w, const std::string& netns_path);

// True while `pid` is alive (reaps it when it has exited; relived is its parent).
bool workload_alive(pid_t pid);

// SIGKILLs the workload's whole PID namespace (killing its PID 1 does) and reaps it.
void kill_workload(pid_t pid);

}  // namespace relive::ha
