// Keeping a tracer and the threads it traces on one CPU. Every ptrace stop hands the CPU from the
// tracee to the tracer and back; when the two sit on different CPUs each hand-off wakes a halted
// (virtual) CPU, which on these machines costs 60-90 us per stop against about 8 us on one CPU
// (rr binds to one CPU for the same reason). A recording runs one thread at a time anyway, so
// the program loses no parallelism it had under the tracer; it does see one CPU in its affinity
// mask (sched_getaffinity, nproc).
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>

#include "relive/cpu_choice.h"
#include "relive/result.h"

namespace relive::tracee {

// "any" (kAnyCpu: picked at random so that concurrent recordings spread), "none" (kNoCpu) or a
// CPU number.
Result<int> parse_cpu_choice(std::string_view text);

// Binds the calling thread, and later the threads of traced processes, to one CPU; gives every
// thread it bound its own mask back when destroyed (or at restore()). Move-only. Use from the
// tracer thread that created it.
class CpuBinding {
 public:
  CpuBinding() = default;
  // With kAnyCpu, a CPU the calling thread may use; with kNoCpu, nothing is bound. A named CPU
  // the thread may not use is an error; a failure to bind to an automatically chosen one is
  // not (the binding only saves time): the binding is then empty.
  static Result<CpuBinding> bind_caller(int choice);
  CpuBinding(CpuBinding&& other) noexcept;
  CpuBinding& operator=(CpuBinding&& other) noexcept;
  CpuBinding(const CpuBinding&) = delete;
  CpuBinding& operator=(const CpuBinding&) = delete;
  ~CpuBinding() { restore(); }

  // The CPU threads are bound to, or -1 when nothing is.
  int cpu() const { return cpu_; }

  // Binds every thread of process `pid`, remembering each one's mask. Threads the process
  // creates later inherit the binding from their creator. Best effort: a thread that cannot be
  // bound runs where it may (slower, never wrong).
  void bind_process(pid_t pid);
  // Gives every thread of the processes bound with bind_process() its mask back (a thread born
  // since gets the mask its process's first thread had), and the calling thread its own.
  void restore();

 private:
  int cpu_ = -1;
  bool caller_bound_ = false;
  cpu_set_t caller_mask_{};
  std::map<pid_t, std::map<pid_t, cpu_set_t>> processes_;  // pid -> tid -> mask
};

}  // namespace relive::tracee
