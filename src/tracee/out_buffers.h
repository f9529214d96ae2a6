// Which tracee memory a completed system call wrote: the out-buffers the recorder saves and the
// replayer writes back in place of running the call.
#pragma once

#include <cstdint>
#include <vector>

#include "relive/result.h"
#include "tracee/syscall_policy.h"
#include "tracee/task.h"

namespace relive::tracee {

struct MemRange {
  uint64_t addr = 0;
  uint64_t len = 0;
};

// The ranges written by syscall `nr` with `args` that returned `result`. Reads tracee memory
// where the layout is described there (iovecs, msghdr, socket address lengths). An ioctl whose
// output cannot be sized is Status::Unsupported.
Result<std::vector<MemRange>> out_ranges(const Task& task, int nr, const SyscallArgs& args,
                                         int64_t result);

// The bytes a write, pwrite64, sendto or writev at `args` sent, given its result.
Result<std::string> written_bytes(const Task& task, int nr, const SyscallArgs& args,
                                  int64_t result);

}  // namespace relive::tracee
