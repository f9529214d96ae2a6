// Running a stopped thread one instruction at a time (PTRACE_SINGLESTEP: the trap flag, which
// works in these VMs where hardware breakpoints do not).
#pragma once

#include <functional>
#include <vector>

#include "relive/result.h"
#include "tracee/task.h"

namespace relive::tracee {

struct SteppedOut {
  uint64_t steps = 0;
  std::vector<int> held_signals;  // signals that arrived meanwhile, not delivered: re-send them
};

// Steps `task` (at any ptrace stop other than a syscall stop) until `done(regs)` holds, at most
// `max_steps` instructions. Signals that arrive are held, not delivered: a handler entered
// mid-way would return into the code being left. Fails if the thread exits or the bound is hit.
Result<SteppedOut> step_until(const Task& task, const std::function<bool(const Regs&)>& done,
                              uint64_t max_steps);

}  // namespace relive::tracee
