#include "tracee/breakpoint.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include <cerrno>

namespace relive::tracee {
namespace {

constexpr unsigned char kInt3 = 0xcc;

Status resume(const Task& task, ResumeHow how) {
  return how == ResumeHow::kCont ? task.cont() : task.syscall();
}

}  // namespace

Result<RunToResult> run_to(const Task& task, uint64_t addr, ResumeHow how,
                           std::optional<std::chrono::milliseconds> timeout, int sig) {
  RunToResult out;
  if (::ptrace(PTRACE_SINGLESTEP, task.tid(), nullptr,
               reinterpret_cast<void*>(static_cast<uintptr_t>(sig))) != 0)
    return PosixError("PTRACE_SINGLESTEP", errno);
  RELIVE_ASSIGN_OR_RETURN(auto stepped, wait_stop(task.tid()));
  if (!(stepped.second.kind == Stop::Kind::kSignal && stepped.second.signo == SIGTRAP)) {
    out.other = stepped.second;
    return out;
  }
  unsigned char original = 0;
  RELIVE_RETURN_IF_ERROR(task.read_mem(addr, &original, 1));
  RELIVE_RETURN_IF_ERROR(task.write_mem(addr, &kInt3, 1));
  Status resumed = resume(task, how);
  std::optional<std::pair<pid_t, Stop>> got;
  if (resumed.ok()) {
    if (timeout) {
      auto waited = wait_stop_for(task.tid(), *timeout);
      if (!waited.ok())
        resumed = waited.status();
      else
        got = std::move(*waited);
      if (resumed.ok() && !got) {
        ::ptrace(PTRACE_INTERRUPT, task.tid(), nullptr, nullptr);
        out.interrupted = true;
      }
    }
    if (resumed.ok() && !got) {
      auto waited = wait_stop(task.tid());
      if (!waited.ok())
        resumed = waited.status();
      else
        got = std::move(*waited);
    }
  }
  // The original byte goes back whatever happened (unless the thread is gone).
  Status restored = task.write_mem(addr, &original, 1);
  RELIVE_RETURN_IF_ERROR(resumed);
  if (got->second.kind == Stop::Kind::kExited) {
    out.other = got->second;
    return out;
  }
  RELIVE_RETURN_IF_ERROR(restored);
  if (got->second.kind == Stop::Kind::kSignal && got->second.signo == SIGTRAP) {
    Regs r = task.regs();
    if (r.rip == addr + 1) {
      r.rip = addr;
      task.set_regs(r);
      out.reached = true;
      return out;
    }
  }
  out.other = got->second;
  return out;
}

}  // namespace relive::tracee
