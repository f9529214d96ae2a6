// The line relived prints on stdout for each migration it received: one JSON object
// {"event":"migrated","migration":ID,"name":...,"strategy":...,"pid":...,...}, what scripts and
// tests read; ID is the one the migration's log lines carry.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "migrate/destination.h"

namespace relive::agent {

std::string migrated_line(const migrate::DestinationOutcome& outcome, const std::string& id);

// Writes whole lines to a stream shared by several threads: each line is written and flushed
// under one lock, so lines never interleave. `out` must outlive the writer.
class LineWriter {
 public:
  explicit LineWriter(std::FILE* out) : out_(out) {}
  void write(const std::string& line);

 private:
  std::FILE* out_;
  std::mutex mu_;
};

}  // namespace relive::agent
