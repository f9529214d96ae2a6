// CR/TR-Motion's integrity check: the source hashes every page its final dump holds
// (page-hashes-<pid>: one little-endian XXH3-64 per present page, in pagemap order) and the
// destination compares the replayed process's memory against them. Pages that differ (a
// nondeterminism the log did not capture: on these machines, rdtsc) are the only memory that
// travels, so the migrated process is always the source's, byte for byte.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "drivers/criu/page_image.h"
#include "relive/result.h"

namespace relive::transfer {

std::string page_hashes_name(pid_t pid);

// Writes page-hashes-<pid> next to pagemap-<pid>.img for every process dumped in `images_dir`.
Status write_page_hashes(const std::string& images_dir);

// Writes the pages image of `dumped_pid`'s dump in `images_dir` from process `live_pid`'s memory
// (read in large batches), checking every page against the hashes as it goes; returns the pages
// that differ (or could not be read), which the image then holds wrongly until patched.
Result<std::vector<criu::VaddrRange>> build_pages_from_process(const std::string& images_dir,
                                                               pid_t dumped_pid, pid_t live_pid);

// Overwrites the given pages of `dumped_pid`'s pages image with what `lookup` returns.
Status patch_pages_image(const std::string& images_dir, pid_t dumped_pid,
                         const std::vector<criu::VaddrRange>& ranges,
                         const criu::PageLookup& lookup);

}  // namespace relive::transfer
