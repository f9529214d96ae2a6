// Replaying a trace recorded with --pid: restore the CRIU checkpoint, then replay.
#pragma once

#include <sys/types.h>

#include <utility>
#include <vector>

#include "relive/replay.h"
#include "replay/replay_session.h"
#include "trace/trace_reader.h"
#include "tracee/task.h"

namespace relive::replay {

// Seizes a process CRIU restored from a checkpoint and stops it at a group stop (where the
// replay of its log starts).
Status seize_restored(pid_t pid);

// The other threads of a restored multi-threaded checkpoint (`h.other_threads`), seized and
// stopped like its first: {tid here, recorded tid} each. Corruption when the restored threads
// are not the ones the header names.
Result<std::vector<std::pair<pid_t, int32_t>>> seize_restored_threads(pid_t pid,
                                                                      const trace::TraceHeader& h);

// Turns syscall user dispatch on in a seized, restored thread (tracee/syscall_dispatch.h), for
// ReplaySession::Mode::kDispatch; false (with a warning) on a kernel without it.
bool turn_on_dispatch(const tracee::Task& task);

// The replay's mode for the restored process `pid` and its other threads: dispatch in every
// thread, or in none.
ReplaySession::Mode turn_on_dispatch_everywhere(
    pid_t pid, const std::vector<std::pair<pid_t, int32_t>>& others);

Result<ReplayResult> replay_checkpoint(trace::TraceReader& reader, const ReplayOptions& options);

}  // namespace relive::replay
