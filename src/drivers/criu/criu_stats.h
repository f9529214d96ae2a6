// Timings and page counts CRIU records in its stats-dump and stats-restore images.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "relive/status.h"

namespace relive::criu {

// -1 (or 0 for counts) means "not reported". Times are milliseconds.
struct CriuStats {
  double freezing_ms = -1;  // seizing and freezing the tree
  double frozen_ms = -1;    // how long the tree stayed frozen: the application-visible pause
  double memdump_ms = -1;   // collecting pages into pipes
  double memwrite_ms = -1;  // writing them to the images
  uint64_t pages_scanned = 0;
  uint64_t pages_written = 0;
  double restore_ms = -1;
  double forking_ms = -1;
  uint64_t pages_restored = 0;
};

// Decodes one stats image (the whole file) into the fields it carries, leaving the others as
// they are. The format: u32 IMG_SERVICE_MAGIC, u32 STATS_MAGIC, u32 length, then a protobuf
// StatsEntry (CRIU's images/stats.proto; times there are microseconds). Corruption on anything
// else; decoding is bounded by the input and never allocates.
Status parse_stats_image(std::string_view image, CriuStats* stats);

// Reads <images_dir>/stats-dump and <images_dir>/stats-restore, whichever exist; fields from a
// missing or undecodable file stay unset.
CriuStats read_stats(const std::string& images_dir);

}  // namespace relive::criu
