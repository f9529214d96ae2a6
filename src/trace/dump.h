// `relive dump`: prints a whole trace — header, then every event — as text or JSON Lines.
#pragma once

#include <cstdio>
#include <string>

#include "relive/status.h"

namespace relive::trace {

// Prints the trace in `dir` to `out`. Text: the header as "key: value" lines, then one line
// per event (trace/event_format.h). JSON (`json`): JSON Lines, {"header":{...}} first, then
// one object per event. On a damaged trace it prints everything before the damage and then
// returns the Corruption (or other) status; IoError if writing to `out` failed.
Status dump_trace(const std::string& dir, bool json, std::FILE* out);

}  // namespace relive::trace
