// What record and replay both do to a freshly exec'd (or restored) process before its first
// instruction, so that the two runs start from identical address spaces: patch the vDSO into
// real syscalls and map the tracer's scratch page.
#pragma once

#include <vector>

#include "relive/result.h"
#include "tracee/process_info.h"
#include "tracee/task.h"
#include "tracee/vdso.h"

namespace relive::tracee {

struct ProcessSetup {
  Auxv auxv;
  VdsoPatch vdso;
  std::vector<int> held_signals;  // signals that arrived during setup (see Injector)
};

// `task` is stopped at a syscall-exit stop (execve's, after launch_traced) or, with
// `at_exit_stop` false, at another ptrace stop. Registers are restored afterwards.
// A process restored from a checkpoint already has the scratch page: `map_scratch` false.
Result<ProcessSetup> setup_process(const Task& task, bool at_exit_stop, bool map_scratch = true);

}  // namespace relive::tracee
