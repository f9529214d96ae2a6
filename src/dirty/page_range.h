// PageRange: a run of whole pages in a process's address space, the unit the dirty tracker and
// the page reader speak in.
#pragma once

#include <cstdint>
#include <vector>

namespace relive::dirty {

inline constexpr uint64_t kPageSize = 4096;

struct PageRange {
  uint64_t start = 0;  // page-aligned virtual address
  uint64_t pages = 0;
  uint64_t end() const { return start + pages * kPageSize; }
  bool operator==(const PageRange&) const = default;
};

// Sorts `ranges` and merges overlapping and adjacent ones.
std::vector<PageRange> normalize(std::vector<PageRange> ranges);

// Total pages in `ranges`.
uint64_t page_count(const std::vector<PageRange>& ranges);

}  // namespace relive::dirty
