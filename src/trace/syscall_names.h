// x86_64 syscall names and argument counts, for printing traces (`relive dump`).
#pragma once

namespace relive::trace {

// Numbers 0 .. kSyscallTableSize - 1 are known.
inline constexpr int kSyscallTableSize = 451;

// "read" for 0; nullptr for a number with no syscall on x86_64 (e.g. 335..423, or > 450).
const char* syscall_name(int nr);

// How many arguments syscall `nr` takes; 6 when unknown, so that nothing is hidden.
int syscall_arg_count(int nr);

}  // namespace relive::trace
