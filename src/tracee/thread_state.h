// What makes two moments of a thread's user-space execution indistinguishable: its general
// registers, its FPU/SSE registers and the writable memory of its process. The recorder takes a
// thread's state where it preempts it; the replayer runs the thread until the state is equal.
#pragma once

#include <cstdint>

#include "relive/result.h"
#include "tracee/task.h"

namespace relive::tracee {

// Equal general registers, ignoring the debug bits of eflags (TF, RF) that a tracer's own
// single steps leave behind.
bool same_regs(const Regs& a, const Regs& b);

// A hash of `task`'s FPU/SSE registers and of every writable mapping of its process except
// relive's own pages (scratch, trampolines) and the kernel's (vDSO, vvar). The thread and every
// other thread of the process must be stopped.
Result<uint64_t> state_hash(const Task& task);

}  // namespace relive::tracee
