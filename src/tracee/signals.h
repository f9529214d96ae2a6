// Classifying signals at a signal-delivery stop.
#pragma once

#include <string>

namespace relive::tracee {

// A fault raised by the thread's own instruction (SIGSEGV on a bad access, SIGFPE...), which
// recurs by itself at replay, as opposed to a signal sent from outside.
bool is_synchronous_fault(int signo, const std::string& siginfo);

}  // namespace relive::tracee
