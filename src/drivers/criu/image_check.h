// Checks on CRIU images that CRIU itself does not make safely.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "relive/result.h"

namespace relive::criu {

// CRIU 4.1.1's restorer loops forever in preadv (at 100% CPU, still holding the half-restored
// task) when a pages-*.img is shorter than its pagemap says: a truncated copy, a disk that filled
// up during the dump. restore() runs this check first so such images fail at once with
// Corruption naming the file. Ok when every pages file holds at least the bytes its pagemaps
// list as present.
Status check_pages_complete(const std::string& images_dir);

struct PagemapSummary {
  uint32_t pages_id = 0;       // the pages file is pages-<pages_id>.img
  uint64_t present_pages = 0;  // pages the entries say are in that file
};

// Sums up one pagemap-*.img (decoded by decode_pagemap_image, page_image.h).
Result<PagemapSummary> parse_pagemap_image(std::string_view image);

}  // namespace relive::criu
