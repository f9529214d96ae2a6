// The vDSO answers clock_gettime, gettimeofday, time and getcpu without entering the kernel, so
// the tracer would never see them. Patching each entry point into `mov $nr,%eax; syscall; ret`
// turns them into real (traced, recorded) system calls. Replay patches the same way.
#pragma once

#include <cstdint>

#include "relive/result.h"
#include "tracee/task.h"

namespace relive::tracee {

struct VdsoPatch {
  uint64_t base = 0;
  uint64_t syscall_insn = 0;  // a `syscall` instruction inside a patched stub (for injection)
  int patched = 0;            // entry points rewritten
};

// Patches the vDSO mapped at `base` in the (stopped) task's process.
Result<VdsoPatch> patch_vdso(const Task& task, uint64_t base);

}  // namespace relive::tracee
