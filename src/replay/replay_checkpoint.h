// Replaying a trace recorded with --pid: restore the CRIU checkpoint, then replay.
#pragma once

#include "relive/replay.h"
#include "trace/trace_reader.h"
#include "tracee/task.h"

namespace relive::replay {

// Seizes a process CRIU restored from a checkpoint and stops it at a group stop (where the
// replay of its log starts).
Status seize_restored(pid_t pid);

// Turns syscall user dispatch on in a seized, restored process (tracee/syscall_dispatch.h), for
// ReplaySession::Mode::kDispatch; false (with a warning) on a kernel without it.
bool turn_on_dispatch(const tracee::Task& task);

Result<ReplayResult> replay_checkpoint(trace::TraceReader& reader, const ReplayOptions& options);

}  // namespace relive::replay
