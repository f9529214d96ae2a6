// Recording: run or attach to a program under the tracer and write a trace directory from which
// `replay_trace()` re-executes it exactly.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "relive/cpu_choice.h"
#include "relive/result.h"

namespace relive {

struct RecordOptions {
  std::string trace_dir;          // created; must not exist or be empty
  std::vector<std::string> argv;  // record from exec: the program and its arguments
  pid_t attach_pid = 0;           // or: attach to this running process
  // Attached mode, for live migration: the log is made readable every 20 ms, and SIGUSR1 ends
  // the recording with the process stopped at a syscall boundary the replay can reach (SIGINT
  // ends it with the process running on).
  bool live = false;
  // A thread that keeps running in user space without a system call, in a loop relive cannot
  // preempt replayably (its state changes on every pass), while other threads wait for their
  // turn ends the recording with an "unsupported" error after this long. 0: wait forever.
  uint32_t spin_limit_ms = 5000;
  // The CPU the tracer and the program are bound to while recording (relive/cpu_choice.h):
  // kAnyCpu, kNoCpu or a CPU number. An attached process gets its own masks back at the end.
  int cpu = kAnyCpu;
  // From exec: the vDSO's clock calls are logged by the recorded process itself, without a
  // ptrace stop (the fast path; README "Recording"). Off: every call stops the process.
  bool syscall_buffer = true;
};

struct RecordResult {
  int wait_status = 0;  // how the recorded program ended (a wait(2) status)
  uint64_t events = 0;
  uint64_t syscalls = 0;
  uint64_t signals = 0;
  uint64_t threads = 0;
  uint64_t preemptions = 0;  // threads stopped in a spin-wait so that others could run
  uint64_t buffered = 0;     // syscalls logged through the fast path (in `syscalls` too)
};

Result<RecordResult> record_trace(const RecordOptions& options);

// The exit code a shell would report for a wait(2) status (128+signal when killed).
int exit_code_of(int wait_status);

}  // namespace relive
