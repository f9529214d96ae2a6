// Reading pages out of a running (or stopped) process from the outside, in large batches, for
// shipping them: the copy half of pre-copy, after DirtyTracker said which pages to copy.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string_view>
#include <vector>

#include "dirty/page_range.h"
#include "relive/result.h"

namespace relive::dirty {

// Receives `bytes` (a whole number of pages) read from virtual address `vaddr`. A non-ok Status
// stops the read and is returned by read_pages. `bytes` is valid only during the call.
using PageSink = std::function<Status(uint64_t vaddr, std::string_view bytes)>;

struct ReadReport {
  uint64_t pages_read = 0;
  std::vector<PageRange> missing;  // pages no longer mapped (unmapped since they were listed)
};

// Reads `ranges` of `pid` with process_vm_readv, several MiB per call, calling `sink` in address
// order of each range. Pages that cannot be read (munmapped between listing and reading) are
// listed in the report rather than failing the read; pages mapped without read permission are
// read through /proc/PID/mem. NotFound when the process is gone.
Result<ReadReport> read_pages(pid_t pid, const std::vector<PageRange>& ranges,
                              const PageSink& sink);

}  // namespace relive::dirty
