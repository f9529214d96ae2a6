// PidWatch tells a process whether another one (its peer across a ShmRing) has terminated.
#pragma once

#include <sys/types.h>

#include "common/scoped_fd.h"
#include "relive/result.h"

namespace relive::transport {

// Holds a pidfd, which becomes readable once the process terminates. Unlike kill(pid, 0) this
// counts a zombie as gone, never reaps it (the owner's waitpid still sees the exit status), and
// cannot be fooled by the PID being reused later. Move-only; the pidfd is closed on destruction.
class PidWatch {
 public:
  PidWatch() = default;  // watches nothing: exited() is always false
  // Fails with NotFound if `pid` has already been reaped.
  static Result<PidWatch> open(pid_t pid);

  bool watching() const { return fd_.valid(); }
  // True once the watched process has terminated. Never blocks.
  bool exited() const;

 private:
  explicit PidWatch(ScopedFd fd) : fd_(std::move(fd)) {}
  ScopedFd fd_;
};

}  // namespace relive::transport
