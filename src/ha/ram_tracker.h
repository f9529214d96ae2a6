// RamTracker: which pages of a VM's RAM changed since the last epoch. The guest's RAM lives in a
// file QEMU maps shared (memory-backend-file,share=on on a tmpfs), so relived reads it directly;
// beside it relived keeps a shadow copy, the RAM as the backup has it. While the guest is stopped,
// capture() compares the two page by page and copies the pages that differ into the shadow: the
// shadow then is exactly the epoch's RAM, and the epoch ships those pages from it (the live RAM
// moves on as soon as the guest runs again).
//
// QEMU offers no dirty log outside its own migration and this kernel has no soft-dirty bits, so
// the comparison reads all of RAM every epoch: its cost grows with the guest's size, not with
// what the guest wrote (about 10 GB/s here, split over two threads).
#pragma once

#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "relive/result.h"

namespace relive::ha {

// `pages` pages starting at byte `offset` of the RAM.
struct RamRun {
  uint64_t offset = 0;
  uint64_t pages = 0;
};

class RamTracker {
 public:
  // Maps `ram_file` (read-only; it must hold `bytes`) and creates `shadow_file` of the same size.
  static Result<RamTracker> create(const std::string& ram_file, const std::string& shadow_file,
                                   uint64_t bytes);
  RamTracker(RamTracker&&) = default;

  // Only while the guest is stopped. Copies the pages that differ from the shadow (all of them
  // when `full`) into it and returns them as runs, in address order.
  std::vector<RamRun> capture(bool full);

  const std::string& shadow_file() const { return shadow_file_; }
  uint64_t bytes() const { return bytes_; }

 private:
  RamTracker() = default;
  std::vector<RamRun> scan(uint64_t begin, uint64_t end, bool full);

  std::string shadow_file_;
  uint64_t bytes_ = 0;
  boost::interprocess::mapped_region ram_;
  boost::interprocess::mapped_region shadow_;
};

}  // namespace relive::ha
