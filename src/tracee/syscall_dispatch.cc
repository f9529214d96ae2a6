#include "tracee/syscall_dispatch.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <cstring>
#include <string_view>
#include <utility>

#include "common/check.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#define PR_SYS_DISPATCH_ON 1
#endif
// PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG (Linux 6.4; newer than Debian 12's headers).
constexpr auto kPtraceGetDispatchConfig = static_cast<__ptrace_request>(0x4211);
struct DispatchConfig {
  uint64_t mode = 0;
  uint64_t selector = 0;
  uint64_t offset = 0;
  uint64_t len = 0;
};
#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2
#endif

namespace relive::tracee {
namespace {

Status set_selector(const Task& task, unsigned char value) {
  return task.write_mem(kDispatchSelectorAddr, &value, 1);
}

Status dispatch_prctl(const Task& task, Injector::At at, uint64_t syscall_insn, bool on,
                      std::vector<int>* held) {
  Regs saved = task.regs();
  Injector inj(task, at, syscall_insn);
  Result<int64_t> got =
      on ? inj.call(SYS_prctl,
                    {PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, kDispatchAllowedStart,
                     kDispatchAllowedEnd - kDispatchAllowedStart, kDispatchSelectorAddr})
         : inj.call(SYS_prctl, {PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0});
  task.set_regs(saved);
  held->insert(held->end(), inj.held_signals().begin(), inj.held_signals().end());
  RELIVE_RETURN_IF_ERROR(got.status());
  if (*got != 0)
    return Status::IoError(
        fmt::format("cannot turn syscall user dispatch {} in thread {}: error {}",
                    on ? "on" : "off", task.tid(), -*got));
  return Status::Ok();
}

// The kernel's struct sigaction on x86-64.
struct KernelSigaction {
  uint64_t handler = 0;
  uint64_t flags = 0;
  uint64_t restorer = 0;
  uint64_t mask = 0;
};
constexpr uint64_t kSaSiginfo = 0x4, kSaRestorer = 0x04000000;
constexpr uint64_t kBlobHandler = kFastPathBlobAddr + RELIVE_FP_SIGSYS_HANDLER_OFFSET;

// rt_sigaction(SIGSYS, act (if any), old) from inside the stopped task; returns the old action.
Result<KernelSigaction> sigsys_action(const Task& task, Injector::At at, uint64_t syscall_insn,
                                      const KernelSigaction* act, std::vector<int>* held) {
  const uint64_t act_addr = kScratchAddr, old_addr = kScratchAddr + sizeof(KernelSigaction);
  if (act != nullptr) RELIVE_RETURN_IF_ERROR(task.write_mem(act_addr, act, sizeof *act));
  Regs saved = task.regs();
  Injector inj(task, at, syscall_insn);
  Result<int64_t> got = inj.call(
      SYS_rt_sigaction, {SIGSYS, act != nullptr ? act_addr : 0, old_addr, sizeof(uint64_t)});
  task.set_regs(saved);
  held->insert(held->end(), inj.held_signals().begin(), inj.held_signals().end());
  RELIVE_RETURN_IF_ERROR(got.status());
  if (*got != 0)
    return Status::IoError(
        fmt::format("rt_sigaction(SIGSYS) in thread {}: error {}", task.tid(), -*got));
  KernelSigaction old;
  RELIVE_RETURN_IF_ERROR(task.read_mem(old_addr, &old, sizeof old));
  return old;
}

// The safety net for a tracer that dies while dispatch is on (fast_path.c, relive_sigsys): the
// blob's SIGSYS handler lets every call through from then on. Installed only where the program's
// SIGSYS action is the default one (returns whether the blob's is in place); removed only where it
// is still the blob's. Uses the scratch page.
Result<bool> install_dispatch_safety_net(const Task& task, Injector::At at, uint64_t syscall_insn,
                                         std::vector<int>* held) {
  RELIVE_ASSIGN_OR_RETURN(KernelSigaction old,
                          sigsys_action(task, at, syscall_insn, nullptr, held));
  if (old.handler != 0) return old.handler == kBlobHandler;  // SIG_IGN or the program's own
  KernelSigaction net;
  net.handler = kBlobHandler;
  net.flags = kSaSiginfo | kSaRestorer;
  net.restorer = kFastPathBlobAddr + RELIVE_FP_SIGSYS_RESTORER_OFFSET;
  net.mask = ~uint64_t{0};  // nothing interrupts it
  RELIVE_RETURN_IF_ERROR(sigsys_action(task, at, syscall_insn, &net, held).status());
  return true;
}

Status remove_dispatch_safety_net(const Task& task, Injector::At at, uint64_t syscall_insn,
                                  std::vector<int>* held) {
  RELIVE_ASSIGN_OR_RETURN(KernelSigaction now,
                          sigsys_action(task, at, syscall_insn, nullptr, held));
  if (now.handler != kBlobHandler) return Status::Ok();  // the program put its own
  KernelSigaction dfl;
  return sigsys_action(task, at, syscall_insn, &dfl, held).status();
}

}  // namespace

Status enable_syscall_dispatch(const Task& task, Injector::At at, uint64_t syscall_insn,
                               std::vector<int>* held) {
  RELIVE_CHECK(at != Injector::At::kEntry, "dispatch turned on from an entry stop");
  // A process that uses dispatch itself (an emulator, Wine) keeps its own: relive's would
  // replace it. (A kernel too old to say is one whose programs hardly use it.)
  DispatchConfig own;
  if (::ptrace(kPtraceGetDispatchConfig, task.tid(), sizeof own, &own) == 0 &&
      own.mode != PR_SYS_DISPATCH_OFF)
    return Status::Unsupported(
        fmt::format("thread {} uses syscall user dispatch itself (selector at {:#x})", task.tid(),
                    own.selector));
  RELIVE_RETURN_IF_ERROR(set_selector(task, kSelectorAllow));
  RELIVE_RETURN_IF_ERROR(dispatch_prctl(task, at, syscall_insn, true, held));
  RELIVE_RETURN_IF_ERROR(set_selector(task, kSelectorBlock));
  // After an injected call the thread is at that call's exit stop, wherever it was before.
  Status net = install_dispatch_safety_net(task, Injector::At::kExit, syscall_insn, held).status();
  if (!net.ok()) (void)disable_syscall_dispatch(task, Injector::At::kExit, syscall_insn, held);
  return net;
}

Status disable_syscall_dispatch(const Task& task, Injector::At at, uint64_t syscall_insn,
                                std::vector<int>* held) {
  Regs saved = task.regs();
  RELIVE_RETURN_IF_ERROR(set_selector(task, kSelectorAllow));
  Status s = dispatch_prctl(task, at, syscall_insn, false, held);
  // After an injected call the thread is at that call's exit stop, wherever it was before.
  if (s.ok()) s = remove_dispatch_safety_net(task, Injector::At::kExit, syscall_insn, held);
  if (at == Injector::At::kEntry) {
    // The entered call was replaced by the first injected one: made again on resumption.
    saved.rip -= 2;
    saved.rax = saved.orig_rax;
    saved.orig_rax = static_cast<uint64_t>(-1);
  }
  task.set_regs(saved);
  return s;
}

bool sets_syscall_dispatch(int nr, const SyscallArgs& args) {
  return nr == SYS_prctl && args[0] == PR_SET_SYSCALL_USER_DISPATCH;
}

bool is_dispatched_syscall(const std::string& siginfo) {
  siginfo_t si{};
  std::memcpy(&si, siginfo.data(), std::min(siginfo.size(), sizeof si));
  return si.si_signo == SIGSYS && si.si_code == SYS_USER_DISPATCH;
}

namespace {

// A `syscall` instruction where dispatch lets calls through: among the fast trampolines, else in
// the fast-path blob. Found in the process's own pages: a process restored from an image carries
// those of the build that made it.
Result<uint64_t> let_through_syscall_insn(const Task& task) {
  constexpr std::pair<uint64_t, uint64_t> kCode[] = {
      {kTrampolineAddr + kFastTrampolineOffset, kTrampolineAddr + kFastTrampolineEnd},
      {kFastPathBlobAddr, kFastPathBlobAddr + kFastPathBlobSize}};
  for (auto [from, to] : kCode) {
    RELIVE_CHECK(from >= kDispatchAllowedStart && to <= kDispatchAllowedEnd);
    Result<std::string> code = task.read_mem(from, to - from);
    if (!code.ok()) continue;
    size_t at = code->find(std::string_view("\x0f\x05", 2));
    if (at != std::string::npos) return from + at;
  }
  return Status::Corruption("relive's pages in the process hold no syscall instruction");
}

}  // namespace

Result<uint64_t> reissue_dispatched_syscall(const Task& task) {
  RELIVE_ASSIGN_OR_RETURN(uint64_t insn, let_through_syscall_insn(task));
  RELIVE_ASSIGN_OR_RETURN(Regs r, task.try_regs());
  uint64_t return_to = r.rip;  // just past the `syscall` the kernel did not make
  r.rip = insn;
  r.rax = r.orig_rax;
  r.orig_rax = static_cast<uint64_t>(-1);
  task.set_regs(r);
  return return_to;
}

Status return_reissued_syscall(const Task& task, uint64_t return_to) {
  RELIVE_ASSIGN_OR_RETURN(Regs r, task.try_regs());
  r.rip = return_to;
  r.rcx = return_to;  // as `syscall` leaves it
  task.set_regs(r);
  return Status::Ok();
}

Status cancel_reissued_syscall(const Task& task, uint64_t return_to) {
  RELIVE_ASSIGN_OR_RETURN(Regs r, task.try_regs());
  r.rip = return_to - 2;  // rax still holds the call's number
  task.set_regs(r);
  return Status::Ok();
}

}  // namespace relive::tracee
