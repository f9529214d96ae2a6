// Resuming a restored workload and confirming that it runs, before anyone calls the restore a
// success. A CRIU restore that "succeeds" can still leave a process whose registers or memory
// are wrong; it then dies on its first instructions, after the source has been ended. So every
// thread (and any thread or process it starts) is watched under ptrace from its first
// instruction for a window: a fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS raised by its own
// instruction) is caught before it is delivered and reported with where it happened. Exits
// and signals the workload sends itself are its own business.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <vector>

#include "relive/result.h"

namespace relive::tracee {

struct ResumeCheck {
  // How long the resumed workload runs under watch.
  std::chrono::milliseconds window{50};
  // Bound on letting it go afterwards (threads that never come to a stop when asked).
  std::chrono::milliseconds deadline{10000};
};

// `processes` are stopped (SIGSTOP, e.g. by `criu restore --leave-stopped`) and not traced;
// the first is the workload's root. Seizes all their threads, sends SIGCONT, watches them for
// the window, and leaves them running untraced. Fails if a watched thread faults, or if the
// root is gone at the end without having ended by itself; then every watched process has been
// sent SIGKILL (none of the workload runs on) and the Status names the thread, the signal and
// the instruction.
Status resume_and_confirm(const std::vector<pid_t>& processes, const ResumeCheck& check = {});

}  // namespace relive::tracee
