#include "replay/replay_checkpoint.h"

namespace relive::replay {

Result<ReplayResult> replay_checkpoint(trace::TraceReader& reader, const ReplayOptions& options) {
  return Status::Unsupported("checkpoint replay is not built yet");
}

}  // namespace relive::replay
