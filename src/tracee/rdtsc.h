// rdtsc/rdtscp trapping. With prctl(PR_SET_TSC, PR_TSC_SIGSEGV) these instructions fault; the
// tracer sees the SIGSEGV, supplies the value (real at record, logged at replay) and steps over.
// Some hypervisors accept the prctl but never fault (this project's CI machines among them):
// then rdtsc runs natively and is not recorded; see the README's limits.
#pragma once

#include <cstdint>
#include <optional>

#include "relive/result.h"
#include "tracee/task.h"

namespace relive::tracee {

struct TscReading {
  uint64_t tsc = 0;
  uint32_t aux = 0;
  bool rdtscp = false;
};

// Whether prctl(PR_SET_TSC, PR_TSC_SIGSEGV) really makes rdtsc fault on this machine (tried
// once, in a forked child; the answer is cached).
bool rdtsc_traps();

// At a SIGSEGV stop: if the faulting instruction is rdtsc/rdtscp, executes it in the tracer,
// puts the result in the task's registers and steps over it. nullopt for any other fault.
Result<std::optional<TscReading>> emulate_rdtsc_if_trapped(const Task& task);

// At a SIGSEGV stop: puts `reading` in the registers and steps over the instruction. False when
// the faulting instruction is not the expected rdtsc/rdtscp.
Result<bool> apply_rdtsc(const Task& task, const TscReading& reading);

}  // namespace relive::tracee
