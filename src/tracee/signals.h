// Classifying signals at a signal-delivery stop.
#pragma once

#include <cstdint>
#include <string>

namespace relive::tracee {

// A fault raised by the thread's own instruction (SIGSEGV on a bad access, SIGFPE...), which
// recurs by itself at replay, as opposed to a signal sent from outside.
bool is_synchronous_fault(int signo, const std::string& siginfo);

// The kernel-internal results of an interrupted syscall that the kernel restarts on the way
// back to user space (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK).
inline bool is_restart_code(int64_t result) {
  return result == -512 || result == -513 || result == -514 || result == -516;
}

}  // namespace relive::tracee
