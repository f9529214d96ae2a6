// Replaying: re-execute a recorded program from its trace, feeding it every recorded result
// without touching the outside world, and report precisely where it diverges if it ever does.
#pragma once

#include <cstdint>
#include <string>

#include "relive/cpu_choice.h"
#include "relive/result.h"

namespace relive {

struct ReplayOptions {
  std::string trace_dir;
  int stdout_fd = 1;  // where the program's recorded stdout/stderr output is reproduced
  int stderr_fd = 2;
  int cpu = kAnyCpu;  // the CPU the replayer and the program are bound to (relive/cpu_choice.h)
  // The vDSO's clock calls are returned by the program's own trampolines from a buffer the
  // replayer fills (README "How it works"); false replays every call through a ptrace stop.
  bool syscall_buffer = true;
};

struct ReplayResult {
  int wait_status = 0;  // the recorded (and reproduced) wait(2) status
  uint64_t events = 0;
  uint64_t buffered = 0;  // of those, calls the program took from its syscall buffer, no stop
};

// A divergence is Status::Divergence with a report: event index, expected vs actual.
Result<ReplayResult> replay_trace(const ReplayOptions& options);

}  // namespace relive
