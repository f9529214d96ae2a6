#include "tracee/signals.h"

#include <signal.h>

#include <algorithm>
#include <cstring>

namespace relive::tracee {

bool is_synchronous_fault(int signo, const std::string& info) {
  if (signo != SIGSEGV && signo != SIGBUS && signo != SIGFPE && signo != SIGILL &&
      signo != SIGTRAP && signo != SIGSYS)
    return false;
  siginfo_t si{};
  std::memcpy(&si, info.data(), std::min(info.size(), sizeof si));
  return si.si_code > 0 && si.si_code != SI_KERNEL;  // kernel-generated for this instruction
}

}  // namespace relive::tracee
