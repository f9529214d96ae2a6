#include "transport/pid_watch.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace relive::transport {

Result<PidWatch> PidWatch::open(pid_t pid) {
  // Through syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link to it.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    if (errno == ESRCH) return Status::NotFound("process " + std::to_string(pid) + " is gone");
    return PosixError("pidfd_open " + std::to_string(pid), errno);
  }
  // pidfd_open does not take O_CLOEXEC; pidfds are always close-on-exec.
  return PidWatch(ScopedFd(fd));
}

bool PidWatch::exited() const {
  if (!fd_.valid()) return false;
  pollfd p{.fd = fd_.get(), .events = POLLIN, .revents = 0};
  int n;
  do {
    n = ::poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  return n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace relive::transport
