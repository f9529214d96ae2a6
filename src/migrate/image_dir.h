// Where a migration keeps its images while they are in flight. They live only for the length of
// the migration and every byte is written while the workload is frozen, so memory-backed
// storage (/dev/shm) is the default: the dump and the rebuild then run at memory speed, not at
// the disk's. The cost is RAM for one copy of the workload while it moves.
#pragma once

#include <sys/stat.h>

#include <string>

namespace relive::migrate {

inline std::string default_image_root(const std::string& requested) {
  if (!requested.empty()) return requested;
  struct stat st {};
  return ::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "";
}

}  // namespace relive::migrate
