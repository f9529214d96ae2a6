// Task: one traced thread, seen through ptrace. It knows how to read and write the thread's
// registers and memory; the record and replay sessions own the policy of what to do with it.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "relive/result.h"

namespace relive::tracee {

using Regs = user_regs_struct;

// What a ptrace stop was, decoded from a wait(2) status.
struct Stop {
  enum class Kind {
    kSyscallEntry,  // PTRACE_SYSCALL entry stop (full-syscall mode)
    kSeccomp,       // PTRACE_EVENT_SECCOMP: entry of a syscall the filter traces
    kSyscallExit,
    kSignal,  // signal-delivery-stop
    kClone,   // PTRACE_EVENT_CLONE/FORK/VFORK in the parent
    kExec,
    kExitEvent,  // PTRACE_EVENT_EXIT: about to exit
    kGroupStop,  // PTRACE_EVENT_STOP: new thread, interrupt or group-stop
    kExited,     // the thread is gone (WIFEXITED / WIFSIGNALED)
  };
  Kind kind = Kind::kExited;
  int signo = 0;   // kSignal, kGroupStop
  int status = 0;  // the raw wait status
  // Syscall stops: what PTRACE_GET_SYSCALL_INFO said (one ptrace call instead of GETREGS).
  int nr = -1;                     // kSeccomp, kSyscallEntry
  std::array<uint64_t, 6> args{};  // kSeccomp, kSyscallEntry
  int64_t rval = 0;                // kSyscallExit
};

Stop decode_stop(int wait_status);
const char* stop_kind_name(Stop::Kind kind);

// Blocks until `tid` (or, with tid == -1, any traced thread) stops or exits.
// Returns the thread and its decoded stop; EINTR is retried.
// With `interrupted` set by a signal handler, a wait cut short by that signal returns
// Status::Aborted instead of waiting on.
Result<std::pair<pid_t, Stop>> wait_stop(pid_t tid, const volatile int* interrupted = nullptr);

// Blocks until `tid` (-1: any traced thread) stops, at most `timeout`; nullopt when it expired.
// `interrupted`: as wait_stop().
Result<std::optional<std::pair<pid_t, Stop>>> wait_stop_for(
    pid_t tid, std::chrono::milliseconds timeout, const volatile int* interrupted = nullptr);

class Task {
 public:
  explicit Task(pid_t tid) : tid_(tid) {}
  pid_t tid() const { return tid_; }

  Regs regs() const;
  void set_regs(const Regs& regs) const;
  // regs() where the thread may be gone (killed meanwhile): an error, not a bug.
  Result<Regs> try_regs() const;

  // Memory access. Reads of unmapped memory fail with Status::IoError.
  Status read_mem(uint64_t addr, void* buf, size_t len) const;
  Result<std::string> read_mem(uint64_t addr, size_t len) const;
  Status write_mem(uint64_t addr, const void* buf, size_t len) const;
  Result<std::string> read_c_string(uint64_t addr, size_t max_len = 4096) const;

  // Resumptions. `sig` is the signal to deliver (only meaningful from some stops).
  Status cont(int sig = 0) const;
  Status syscall(int sig = 0) const;  // resume to the next syscall stop

  uint64_t event_msg() const;  // PTRACE_GETEVENTMSG
  Status get_siginfo(std::string* info) const;
  Status set_siginfo(const std::string& info) const;

 private:
  pid_t tid_;
};

}  // namespace relive::tracee
