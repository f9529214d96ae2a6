#include "tracee/inject.h"

#include <signal.h>

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "tracee/syscall_dispatch.h"

namespace relive::tracee {
namespace {

constexpr int kMaxRestarts = 100;

// ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND: the call did nothing and is made again as it was
// (ERESTART_RESTARTBLOCK would need restart_syscall; no injected call sleeps that way).
bool is_restartable(int64_t result) { return result == -512 || result == -513 || result == -514; }

}  // namespace

pid_t sigchld_sender(const Task& task) {
  std::string raw;
  if (!task.get_siginfo(&raw).ok()) return 0;
  siginfo_t si{};
  std::memcpy(&si, raw.data(), std::min(raw.size(), sizeof si));
  return si.si_pid;
}

Injector::Injector(const Task& task, At at, uint64_t syscall_insn)
    : task_(task), at_(at), syscall_insn_(syscall_insn) {
  // At an entry stop the instruction just executed is a `syscall` (2 bytes); reuse it.
  if (at == At::kEntry) syscall_insn_ = task.regs().rip - 2;
}

Result<int64_t> Injector::call(int nr, std::initializer_list<uint64_t> args) {
  RELIVE_CHECK(args.size() <= 6);
  Regs r = task_.regs();
  uint64_t a[6] = {};
  size_t i = 0;
  for (uint64_t v : args) a[i++] = v;
  r.rdi = a[0], r.rsi = a[1], r.rdx = a[2], r.r10 = a[3], r.r8 = a[4], r.r9 = a[5];
  if (at_ == At::kEntry) {
    r.orig_rax = static_cast<uint64_t>(nr);  // replace the syscall being entered
  } else {
    r.rip = syscall_insn_;
    r.rax = static_cast<uint64_t>(nr);
    r.orig_rax = static_cast<uint64_t>(-1);  // not in a syscall: no restart logic
  }
  task_.set_regs(r);
  RELIVE_RETURN_IF_ERROR(run_to_exit());
  at_ = At::kExit;
  int64_t result = static_cast<int64_t>(task_.regs().rax);
  // A signal came in the way (a fork with a signal pending, a wait a signal interrupted): made
  // again from the same instruction, as the kernel restarts it, once the signal is held (it is
  // taken at the stop on the way back in, see run_to_exit). Bounded: a signal that keeps coming
  // faster than the call completes is the caller's error to report.
  for (int again = 0; again < kMaxRestarts && is_restartable(result); ++again) {
    Regs x = task_.regs();
    x.rip -= 2;  // the `syscall` just made
    x.rax = static_cast<uint64_t>(nr);
    x.orig_rax = static_cast<uint64_t>(-1);
    x.rdi = a[0], x.rsi = a[1], x.rdx = a[2], x.r10 = a[3], x.r8 = a[4], x.r9 = a[5];
    task_.set_regs(x);
    RELIVE_RETURN_IF_ERROR(run_to_exit());
    result = static_cast<int64_t>(task_.regs().rax);
  }
  return result;
}

Status Injector::run_to_exit() {
  RELIVE_RETURN_IF_ERROR(task_.syscall());
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, wait_stop(task_.tid()));
    const Stop& s = got.second;
    switch (s.kind) {
      case Stop::Kind::kSyscallExit:
        return Status::Ok();
      case Stop::Kind::kSyscallEntry:
      case Stop::Kind::kSeccomp:
      case Stop::Kind::kClone:      // an injected fork reports its child first
      case Stop::Kind::kGroupStop:  // a stopped process (CRIU's restore) reports it again
        RELIVE_RETURN_IF_ERROR(task_.syscall());
        break;
      case Stop::Kind::kSignal: {
        std::string info;
        if (s.signo == SIGSYS && task_.get_siginfo(&info).ok() && is_dispatched_syscall(info)) {
          // The process has syscall user dispatch on: the call is made again from an instruction
          // dispatch lets through (the registers are the caller's to restore).
          RELIVE_RETURN_IF_ERROR(reissue_dispatched_syscall(task_).status());
          RELIVE_RETURN_IF_ERROR(task_.syscall());
          break;
        }
        if (!(s.signo == SIGCHLD && swallow_child_ != 0 && sigchld_sender(task_) == swallow_child_))
          held_.push_back(s.signo);
        RELIVE_RETURN_IF_ERROR(task_.syscall());
        break;
      }
      case Stop::Kind::kExited:
        return Status::Aborted("thread " + std::to_string(task_.tid()) +
                               " exited during an injected system call");
      default:
        return Status::IoError(fmt::format("unexpected {} stop (signal {}) in injected syscall",
                                           stop_kind_name(s.kind), s.signo));
    }
  }
}

}  // namespace relive::tracee
