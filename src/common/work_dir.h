// A private temporary directory (mode 0700) removed with everything in it when its owner goes.
#pragma once

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>

#include "common/file_util.h"
#include "relive/result.h"

namespace relive {

class WorkDir {
 public:
  // Creates <parent>/relive-<tag>-XXXXXX; parent empty: $TMPDIR, else /tmp.
  static Result<WorkDir> create(const std::string& parent, const std::string& tag) {
    std::string base = parent;
    if (base.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string tmpl = base + "/relive-" + tag + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return PosixError("mkdtemp " + tmpl, errno);
    return WorkDir(std::move(tmpl));
  }
  WorkDir(WorkDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  WorkDir& operator=(WorkDir&&) = delete;
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  ~WorkDir() {
    if (!path_.empty()) (void)remove_tree(path_);
  }
  const std::string& path() const { return path_; }
  // Leaves the directory in place (for a post-mortem) and returns its path.
  std::string keep() { return std::exchange(path_, {}); }

 private:
  explicit WorkDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace relive
