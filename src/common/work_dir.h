// A private temporary directory (mode 0700) removed with everything in it when its owner goes.
// Its owner holds an flock on <dir>/.owner (taken before the file gets that name, so that a
// sweep never finds it unlocked while its owner lives) for as long as the directory is in use: a
// directory
// whose owner died without removing it (killed, crashed; its images can be as large as the
// workload, in /dev/shm) is recognised by the free lock and swept by the next owner of its kind.
#pragma once

#include <string>
#include <utility>

#include "common/scoped_fd.h"
#include "relive/result.h"

namespace relive {

class WorkDir {
 public:
  // Creates <parent>/relive-<tag>-XXXXXX; parent empty: $TMPDIR, else /tmp.
  static Result<WorkDir> create(const std::string& parent, const std::string& tag);
  // Removes the <parent>/relive-<tag>-* directories whose owner is gone (their .owner lock is
  // free); directories kept on purpose (keep()) or from older relives (no .owner) stay. Returns
  // how many were removed.
  static int remove_abandoned(const std::string& parent, const std::string& tag);

  WorkDir(WorkDir&& o) noexcept : path_(std::exchange(o.path_, {})), lock_(std::move(o.lock_)) {}
  WorkDir& operator=(WorkDir&&) = delete;
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  ~WorkDir();
  const std::string& path() const { return path_; }
  // Leaves the directory in place (for a post-mortem) and returns its path; no sweep removes it.
  std::string keep();

 private:
  WorkDir(std::string path, ScopedFd lock) : path_(std::move(path)), lock_(std::move(lock)) {}
  std::string path_;
  ScopedFd lock_;
};

}  // namespace relive
