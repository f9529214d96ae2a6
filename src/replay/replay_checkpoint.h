// Replaying a trace recorded with --pid: restore the CRIU checkpoint, then replay.
#pragma once

#include "relive/replay.h"
#include "trace/trace_reader.h"

namespace relive::replay {

Result<ReplayResult> replay_checkpoint(trace::TraceReader& reader, const ReplayOptions& options);

}  // namespace relive::replay
