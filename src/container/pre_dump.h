// relive container checkpoint --pre-dump N: what a pre-dump can be on this host, and why it does
// not shorten the freeze.
//
// CRIU's pre-dump copies memory while the tree runs and lets the final dump write only the pages
// written since, which it learns from soft-dirty bits. This kernel has none: CRIU's pre-dump
// refuses to run and its final dump writes every page whatever was copied before, and CRIU 4.1.1
// cannot be handed a dirty set from anyone else. pre_dump() does the rounds with relive's own
// tracker (dirty/dirty_tracker.h), as pre-copy migration does: round 0 copies every tracked page
// while the tree runs, each later round the pages written during the one before, and at the end
// it counts the pages written since the last round (what an incremental final dump would add).
// The copies have no consumer, because the archive holds CRIU's complete dump; they are read and
// dropped. So the rounds cost what pre-copy's would and show how much memory the tree writes per
// round, but the freeze stays what CRIU makes it (docs/container.md has the measurement).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "relive/container.h"
#include "relive/result.h"

namespace relive::container {

struct PreDumpReport {
  std::vector<uint64_t> round_pages;  // pages copied in each round
  uint64_t final_dirty_pages = 0;     // written after the last round, counted just before the dump
  double ms = 0;                      // wall time of the rounds (the tree runs throughout)
};

// `rounds` rounds over the tree rooted at `root` (nothing for rounds <= 0). The trackers are
// removed before it returns, whatever happens; a process that exits meanwhile is left out.
Result<PreDumpReport> pre_dump(pid_t root, int rounds);

// Copies `r` into the checkpoint's result.
inline void fill_pre_dump(const PreDumpReport& r, ContainerCheckpointResult* out) {
  out->pre_dump_pages = r.round_pages;
  out->pre_dump_final_dirty = r.final_dirty_pages;
  out->pre_dump_ms = r.ms;
}

}  // namespace relive::container
