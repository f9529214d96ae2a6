// Divergence reports: what the trace expected at an event and what the program did instead.
#pragma once

#include <cstdint>
#include <string>

#include "relive/status.h"
#include "tracee/syscall_policy.h"
#include "wire/trace_types.h"

namespace relive::replay {

// "read(3, 0x7ffd1234, 4096)"
std::string format_call(int nr, const tracee::SyscallArgs& args);

// Status::Divergence("at event #12 (thread 4711): expected read(...), the program called
// write(...)").
Status divergence(uint64_t index, int32_t tid, const std::string& expected,
                  const std::string& actual);

// Compares the arguments the program passes at replay with the recorded ones.
Status check_call(uint64_t index, const trace::SyscallEvent& ev, int nr,
                  const tracee::SyscallArgs& args);

}  // namespace relive::replay
