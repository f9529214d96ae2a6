// Recording a process that is already running (relive record --pid): attach, take a
// copy-on-write checkpoint (a forked, frozen child dumped by CRIU) and record from there.
#pragma once

#include "relive/record.h"

namespace relive::record {

Result<RecordResult> record_attached(const RecordOptions& options);

}  // namespace relive::record
