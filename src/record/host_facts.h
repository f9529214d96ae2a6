// The recording host's facts that every trace header carries (both record entry points).
#pragma once

#include "wire/trace_types.h"

namespace relive::record {

// Sets the header's host name, kernel, start time (wall clock, ns since the epoch) and whether
// rdtsc traps here.
void fill_host_facts(trace::TraceHeader* h);

}  // namespace relive::record
