#include "record/attach.h"

namespace relive::record {

Result<RecordResult> record_attached(const RecordOptions& options) {
  return Status::Unsupported("--pid attach is not built yet");
}

}  // namespace relive::record
