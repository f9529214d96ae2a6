// Runs system calls inside a stopped tracee on its behalf: the replayer maps saved files this
// way, and the attacher forks the checkpoint child. The tracee's own registers are the caller's
// to restore afterwards.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "relive/result.h"
#include "tracee/task.h"

namespace relive::tracee {

// A fixed, otherwise unused page mapped into every recorded and replayed process at start (at
// both, so address-space layouts match) where the tracer puts strings for injected calls.
inline constexpr uint64_t kScratchAddr = 0x70000000000ull;
inline constexpr uint64_t kScratchSize = 4096;

// The pid that sent the SIGCHLD `task` is stopped on (0 if unknown).
pid_t sigchld_sender(const Task& task);

class Injector {
 public:
  enum class At { kEntry, kExit, kElsewhere };
  // `task` is stopped at a syscall entry (seccomp or PTRACE_SYSCALL), a syscall exit, or any
  // other ptrace stop; `syscall_insn` is the address of a `syscall` instruction to run from
  // (ignored at an entry stop, where the current syscall is replaced).
  Injector(const Task& task, At at, uint64_t syscall_insn);
  ~Injector() = default;
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;

  // Runs syscall `nr` and returns its raw result (-errno on failure). Afterwards the task is at
  // a syscall-exit stop. A call a signal interrupted before it did anything (a fork with a signal
  // pending) is made again, the signal held (below).
  Result<int64_t> call(int nr, std::initializer_list<uint64_t> args);

  // SIGCHLD from `child` (the tracer's own checkpoint fork stopping or dying) is swallowed
  // instead of failing the injection: the program never asked for that child.
  void swallow_sigchld_from(pid_t child) { swallow_child_ = child; }

  // Other signals that arrive while injecting are held back (a ptrace stop cannot take them
  // mid-call) and listed here for the caller to re-send or, at replay, to drop.
  const std::vector<int>& held_signals() const { return held_; }

 private:
  Status run_to_exit();
  const Task& task_;
  At at_;
  uint64_t syscall_insn_;
  pid_t swallow_child_ = 0;
  std::vector<int> held_;
};

}  // namespace relive::tracee
