// Starts a program under the tracer the same way for record and replay: address-space
// randomization off, rdtsc trapping on, the seccomp filter installed, then execve. Returns with
// the new process stopped at its execve's syscall-exit stop, before its first instruction.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "relive/result.h"

namespace relive::tracee {

struct LaunchSpec {
  std::string path;  // what execve gets
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;  // empty: inherit
  bool seccomp = true;
  // Replay on another host: files bind-mounted (in a private mount namespace) before execve,
  // e.g. the recorded copy of the program over its path. Pairs of (source, target).
  std::vector<std::pair<std::string, std::string>> bind_mounts;
  int stdin_fd = -1;  // replaced by this descriptor in the child when >= 0
};

// ptrace options every traced process gets.
long trace_options(bool seccomp);

Result<pid_t> launch_traced(const LaunchSpec& spec);

}  // namespace relive::tracee
