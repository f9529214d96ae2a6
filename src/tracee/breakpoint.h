// Running a stopped thread to one instruction with a software breakpoint (int3; hardware
// breakpoints do not work in these VMs). Only the thread being run may execute user code
// meanwhile: every other thread of the process is stopped.
#pragma once

#include <chrono>
#include <optional>

#include "relive/result.h"
#include "tracee/task.h"

namespace relive::tracee {

enum class ResumeHow { kCont, kSyscall };

struct RunToResult {
  bool reached = false;      // stopped with rip == the address, the breakpoint removed
  Stop other;                // !reached: the stop that came first, already waited for
  bool interrupted = false;  // the timeout expired and PTRACE_INTERRUPT was sent: unless `other`
                             // is that interrupt's stop (kGroupStop), it is still to come
};

// `task` is at a ptrace stop in user space (not a syscall-entry stop). It first executes one
// instruction (so a thread sitting at `addr` makes a whole pass; `sig` is delivered there), then
// runs until it reaches `addr`, something else stops it, or `timeout` expires.
Result<RunToResult> run_to(const Task& task, uint64_t addr, ResumeHow how,
                           std::optional<std::chrono::milliseconds> timeout, int sig = 0);

}  // namespace relive::tracee
