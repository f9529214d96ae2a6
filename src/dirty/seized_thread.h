// SeizedThread: one thread of a running process, seized with ptrace and held in a stop so that
// system calls can be injected into the process, then let go exactly as it was found. It is how
// the dirty tracker works inside a process that relive did not launch: the process is not
// recorded, so there is no scratch page and no patched vDSO; the `syscall` instruction to run
// from is found in the vDSO's own fallback paths.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "relive/result.h"
#include "tracee/inject.h"
#include "tracee/task.h"

namespace relive::dirty {

class SeizedThread {
 public:
  // Seizes a live thread of `pid` (the leader unless it has exited) and interrupts it at a clean
  // boundary: a syscall it was blocked in is rewound to be re-issued (or continued through
  // restart_syscall) after release. Works on a process in a SIGSTOP group-stop, which stays
  // stopped. NotFound when there is no such process; Unsupported when another tracer holds it.
  static Result<SeizedThread> seize(pid_t pid);
  // Seizes thread `tid` of process `pid` in particular, injecting (if at all) through the
  // `syscall` instruction at `syscall_insn` (find_syscall_insn): how a whole process is frozen
  // one thread after another. NotFound when the thread is gone.
  static Result<SeizedThread> seize_thread(pid_t pid, pid_t tid, uint64_t syscall_insn);

  // Takes a thread the caller already holds in a ptrace stop other than a syscall-entry stop
  // (`at`: kExit or kElsewhere). release() then restores the registers (an interrupted syscall
  // rewound to be re-issued) and leaves the thread at a syscall-exit stop; the caller keeps it.
  static Result<SeizedThread> adopt(const tracee::Task& task, tracee::Injector::At at);

  SeizedThread(SeizedThread&&) noexcept;
  SeizedThread& operator=(SeizedThread&&) = delete;
  SeizedThread(const SeizedThread&) = delete;
  ~SeizedThread();  // release(), ignoring its outcome

  // Runs syscall `nr` in the process; returns its raw result (-errno on failure).
  Result<int64_t> call(int nr, std::initializer_list<uint64_t> args);
  // Same, and turns a negative result into a PosixError naming `what`.
  Result<int64_t> call_ok(const char* what, int nr, std::initializer_list<uint64_t> args);

  const tracee::Task& task() const { return *task_; }
  // The registers the thread resumes with at release(): as found, an interrupted syscall
  // rewound the way the kernel's own restart would (orig_rax -1).
  const tracee::Regs& resume_regs() const { return saved_; }
  // Makes release() resume the thread with `regs` instead (orig_rax should be -1).
  void set_resume_regs(const tracee::Regs& regs) { saved_ = regs; }
  pid_t pid() const { return pid_; }

  // Restores the registers, detaches (if seize() attached) and re-sends the signals that arrived
  // while the thread was held (process-directed: a thread-directed signal may land on another
  // thread). Idempotent.
  Status release();

 private:
  SeizedThread(pid_t pid, std::unique_ptr<tracee::Task> task, tracee::Injector::At at,
               uint64_t syscall_insn, bool owns_ptrace);
  pid_t pid_;
  std::unique_ptr<tracee::Task> task_;  // heap-held: the Injector refers to it
  std::unique_ptr<tracee::Injector> injector_;
  tracee::Regs saved_{};
  bool owns_ptrace_;
  bool held_ = true;
};

// The address of a `syscall` instruction (0f 05) in the vDSO of `pid`.
Result<uint64_t> find_syscall_insn(pid_t pid);

}  // namespace relive::dirty
