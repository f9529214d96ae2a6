// PrivateTmpfs: a fresh tmpfs that is mounted nowhere in the caller's mount namespace, held by an
// fd (the kernel's mount API: fsopen, fsmount). A child started with it in SpawnOptions::mounts
// (common/subprocess.h) sees it at a path of its own private mount namespace; what the child
// leaves there stays readable through this object after the child and its namespace are gone.
// The tmpfs and its files are freed with this object (the last fd). Needs CAP_SYS_ADMIN.
//
// One child per PrivateTmpfs: the child's namespace takes the mount over, and once that
// namespace is gone the mount can be read here but not attached again.
#pragma once

#include <cstddef>
#include <string>

#include "common/scoped_fd.h"
#include "relive/result.h"

namespace relive {

class PrivateTmpfs {
 public:
  // `source` is what /proc/PID/mountinfo shows as the mount's source ("relive-kdat").
  static Result<PrivateTmpfs> create(const std::string& source);

  // The mount, for SpawnOptions::mounts. Owned by this object.
  int fd() const { return fd_.get(); }
  // The regular file `name` (relative to the tmpfs's root, no symlinks followed); NotFound
  // when it is not there, InvalidArgument when it is larger than `max_bytes`.
  Result<std::string> read(const std::string& name, size_t max_bytes = size_t{16} << 20) const;

 private:
  explicit PrivateTmpfs(ScopedFd fd) : fd_(std::move(fd)) {}
  ScopedFd fd_;
};

}  // namespace relive
