#include "common/work_dir.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "common/file_util.h"

namespace relive {
namespace {

constexpr const char* kOwner = "/.owner";

std::string base_of(const std::string& parent) {
  if (!parent.empty()) return parent;
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

}  // namespace

Result<WorkDir> WorkDir::create(const std::string& parent, const std::string& tag) {
  std::string tmpl = base_of(parent) + "/relive-" + tag + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return PosixError("mkdtemp " + tmpl, errno);
  // Locked before it gets its name: a sweep never sees an .owner that is not held yet.
  std::string owner = tmpl + kOwner, fresh = owner + ".new";
  ScopedFd lock(::open(fresh.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!lock.valid() || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0 ||
      ::rename(fresh.c_str(), owner.c_str()) != 0) {
    int err = errno;
    (void)remove_tree(tmpl);
    return PosixError("lock " + owner, err);
  }
  return WorkDir(std::move(tmpl), std::move(lock));
}

int WorkDir::remove_abandoned(const std::string& parent, const std::string& tag) {
  std::string prefix = "relive-" + tag + "-";
  int removed = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(base_of(parent), ec)) {
    std::string name = e.path().filename().string();
    if (!name.starts_with(prefix) || !e.is_directory(ec)) continue;
    std::string dir = e.path().string();
    ScopedFd lock(::open((dir + kOwner).c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!lock.valid()) continue;  // kept, from an older relive, or not ours
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;  // its owner is alive
    if (remove_tree(dir).ok()) ++removed;
  }
  return removed;
}

WorkDir::~WorkDir() {
  if (!path_.empty()) (void)remove_tree(path_);
}

std::string WorkDir::keep() {
  if (!path_.empty()) ::unlink((path_ + kOwner).c_str());
  lock_.reset();
  return std::exchange(path_, {});
}

}  // namespace relive
