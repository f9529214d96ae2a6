// Signal facts the recorder needs at a ptrace stop: whether a signal will be delivered before
// the thread's next user instruction, and whether a signal is a synchronous fault.
#pragma once

#include <sys/types.h>

#include <string>

#include "relive/result.h"
#include "tracee/signals.h"

namespace relive::record {

// True when `tid` (stopped) has a pending signal that its mask does not block.
Result<bool> signal_deliverable(pid_t tid);

// Whether a signal can have become deliverable during this syscall: it was interrupted, or it
// signalled its own process. Other signals that arrive during a syscall are still correct, just
// treated as arriving in user code (delivered at the next syscall). Saves two ptrace calls a stop.
bool may_have_raised_signal(int nr, int64_t result);

}  // namespace relive::record
