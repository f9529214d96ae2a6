#include "common/memory_policy.h"

#include <malloc.h>

namespace relive {

void keep_freed_memory() {
  // Allocations up to 1 GiB come from the heap; up to 1 GiB of freed heap stays mapped. Both
  // bound what is kept: relive's buffers are a few tens of MiB at most.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace relive
