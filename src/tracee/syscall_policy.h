// What the tracer does with a system call, given its arguments: the table's policy (see
// syscall_table.h), refined where the number alone does not say.
#pragma once

#include <cstdint>
#include <string>

#include "tracee/syscall_table.h"
#include "tracee/task.h"

namespace relive::tracee {

struct Decision {
  Policy policy = Policy::kUnsupported;
  std::string why;  // for kUnsupported: what is not supported, for the user
};

// The policy from the syscall number alone; kAllow syscalls are not traced by the seccomp filter.
inline Policy base_policy(int nr) { return syscall_spec(nr).policy; }
// Refines base_policy() with the arguments (mmap flags, clone flags, futex operation).
// `clone3_flags` are the flags of clone3's argument struct, read by the caller.
Decision decide(int nr, const SyscallArgs& args, uint64_t clone3_flags = 0);

// An anonymous mmap or a moving mremap whose address the kernel chooses. From exec, record and
// replay choose alike (the same layout, grown the same way); in a process CRIU restored, the
// kernel's mmap base is not the original's, so an attached recording logs where such a call
// landed and its replay is made to land there (pin_placement).
bool kernel_places(int nr, const SyscallArgs& args);
// Rewrites the entry registers `r` of such a call so that it lands at `recorded` (its recorded
// result): MAP_FIXED_NOREPLACE there, or MREMAP_FIXED to it. False when it cannot be pinned (an
// mremap that stayed in place, which the kernel repeats by itself).
bool pin_placement(int nr, uint64_t recorded, Regs* r);

// True for write-family calls whose target may be the recorder's own stdout/stderr.
inline bool is_output_write(int nr) { return syscall_spec(nr).flags & kOutputWrite; }
// True for syscalls that change what a file descriptor number refers to.
inline bool changes_fd_table(int nr) { return syscall_spec(nr).flags & kFdTable; }

}  // namespace relive::tracee
