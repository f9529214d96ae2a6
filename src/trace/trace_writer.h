// Writing the parts of a trace directory that are written once: the header. The event log
// is written by EventLogWriter and the file copies by FileStore.
#pragma once

#include <string>

#include "relive/status.h"
#include "wire/trace_types.h"

namespace relive::trace {

// Creates `dir` if needed and writes its header file atomically (a reader sees the old header,
// none, or the whole new one). InvalidArgument if the header is too large to be read back.
Status write_header(const std::string& dir, const TraceHeader& h);

}  // namespace relive::trace
