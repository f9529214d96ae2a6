#include "tracee/single_step.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/ptrace.h>

#include <cerrno>

namespace relive::tracee {

Result<SteppedOut> step_until(const Task& task, const std::function<bool(const Regs&)>& done,
                              uint64_t max_steps) {
  SteppedOut out;
  while (!done(task.regs())) {
    if (out.steps == max_steps)
      return Status::Unsupported(
          fmt::format("thread {} did not get there within {} instructions", task.tid(), max_steps));
    if (::ptrace(PTRACE_SINGLESTEP, task.tid(), nullptr, nullptr) != 0)
      return PosixError("PTRACE_SINGLESTEP", errno);
    ++out.steps;
    for (;;) {
      RELIVE_ASSIGN_OR_RETURN(auto got, wait_stop(task.tid()));
      const Stop& s = got.second;
      if (s.kind == Stop::Kind::kExited)
        return Status::Aborted(fmt::format("thread {} exited while stepping", task.tid()));
      if (s.kind == Stop::Kind::kSignal && s.signo == SIGTRAP) break;  // one step done
      if (s.kind == Stop::Kind::kSignal) {
        // Arrived before the step ran; it stays pending-free here and is re-sent later.
        out.held_signals.push_back(s.signo);
        if (::ptrace(PTRACE_SINGLESTEP, task.tid(), nullptr, nullptr) != 0)
          return PosixError("PTRACE_SINGLESTEP", errno);
        continue;
      }
      // Group-stop or event stops: step on.
      if (::ptrace(PTRACE_SINGLESTEP, task.tid(), nullptr, nullptr) != 0)
        return PosixError("PTRACE_SINGLESTEP", errno);
    }
  }
  return out;
}

}  // namespace relive::tracee
