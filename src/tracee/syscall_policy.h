// What the tracer does with a system call, given its arguments: the table's policy (see
// syscall_table.h), refined where the number alone does not say.
#pragma once

#include <cstdint>
#include <string>

#include "tracee/syscall_table.h"

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

// True for write-family calls whose target may be the recorder's own stdout/stderr.
inline bool is_output_write(int nr) { return syscall_spec(nr).flags & kOutputWrite; }
// True for syscalls that change what a file descriptor number refers to.
inline bool changes_fd_table(int nr) { return syscall_spec(nr).flags & kFdTable; }

}  // namespace relive::tracee
