// Child processes: vfork (and clone with CLONE_VFORK) is run as a plain fork, at record and at
// replay alike. A vfork child borrows its parent's memory and stops the parent until it execs;
// under a tracer that runs one thread at a time that would serialize into a deadlock at replay,
// and the copy a fork makes is exactly what a well-behaved vfork child may rely on. The one
// behaviour lost: a vfork child that reports an exec failure by writing into its parent's
// memory (glibc's posix_spawn) is not seen by the parent, which then sees the child exit 127.
#pragma once

#include "relive/status.h"
#include "tracee/task.h"

namespace relive::tracee {

// At a syscall-entry stop of fork/vfork/clone/clone3 that creates a process: rewrites the call
// (registers, or clone3's argument struct in memory) into a fork. `regs` are the entry registers
// and are updated in place; the caller sets them.
Status convert_vfork_to_fork(const Task& task, Regs* regs);

// The child-tid address of a process-creating clone with CLONE_CHILD_SETTID (0 if none): the
// kernel writes the child's pid there in the child's own memory.
Result<uint64_t> child_settid_address(const Task& task, int nr,
                                      const std::array<uint64_t, 6>& args);

}  // namespace relive::tracee
