#include "dirty/page_range.h"

#include <algorithm>

namespace relive::dirty {

std::vector<PageRange> normalize(std::vector<PageRange> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const PageRange& a, const PageRange& b) { return a.start < b.start; });
  std::vector<PageRange> out;
  for (const PageRange& r : ranges) {
    if (r.pages == 0) continue;
    if (!out.empty() && r.start <= out.back().end()) {
      uint64_t end = std::max(out.back().end(), r.end());
      out.back().pages = (end - out.back().start) / kPageSize;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

uint64_t page_count(const std::vector<PageRange>& ranges) {
  uint64_t n = 0;
  for (const PageRange& r : ranges) n += r.pages;
  return n;
}

}  // namespace relive::dirty
