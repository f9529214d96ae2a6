#include "record/signal_boundary.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>

#include "tracee/signals.h"

namespace relive::record {
namespace {

struct PeekArgs {  // struct ptrace_peeksiginfo_args
  uint64_t off;
  uint32_t flags;
  int32_t nr;
};
constexpr uint32_t kPeekShared = 1;  // PTRACE_PEEKSIGINFO_SHARED

Result<uint64_t> pending_mask(pid_t tid, uint32_t flags) {
  uint64_t mask = 0;
  siginfo_t si[8];
  for (uint64_t off = 0;; off += 8) {
    PeekArgs a{off, flags, 8};
    long n = ::ptrace(PTRACE_PEEKSIGINFO, tid, &a, si);
    if (n < 0) return PosixError("PTRACE_PEEKSIGINFO", errno);
    for (long i = 0; i < n; ++i) mask |= 1ull << (si[i].si_signo - 1);
    if (n < 8) return mask;
  }
}

}  // namespace

Result<bool> signal_deliverable(pid_t tid) {
  RELIVE_ASSIGN_OR_RETURN(uint64_t mine, pending_mask(tid, 0));
  RELIVE_ASSIGN_OR_RETURN(uint64_t shared, pending_mask(tid, kPeekShared));
  uint64_t pending = mine | shared;
  if (pending == 0) return false;
  uint64_t blocked = 0;
  if (::ptrace(PTRACE_GETSIGMASK, tid, sizeof blocked, &blocked) != 0)
    return PosixError("PTRACE_GETSIGMASK", errno);
  return (pending & ~blocked) != 0;
}

bool may_have_raised_signal(int nr, int64_t result) {
  if (result == -EINTR || tracee::is_restart_code(result)) return true;
  switch (nr) {
    case SYS_kill:
    case SYS_tkill:
    case SYS_tgkill:
    case SYS_rt_sigqueueinfo:
    case SYS_rt_tgsigqueueinfo:
    case SYS_rt_sigtimedwait:
    case SYS_pause:
    case SYS_alarm:
    case SYS_setitimer:
    case SYS_timer_settime:
      return true;
    default:
      return false;
  }
}

}  // namespace relive::record
