#include "common/trusted_path.h"

#include <fmt/format.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace relive {
namespace {

// Why `st` (of `path`) could be changed by someone else, or "" when it cannot.
std::string untrusted_because(const std::string& path, const struct stat& st, bool directory) {
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return fmt::format("{} is owned by uid {}, neither root nor us", path, st.st_uid);
  bool sticky = directory && (st.st_mode & S_ISVTX) != 0;
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !sticky)
    return fmt::format("{} is writable by group or others (mode {:04o})", path, st.st_mode & 07777);
  return "";
}

}  // namespace

Result<std::string> trusted_file(const std::string& path) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    if (errno == ENOENT) return Status::NotFound(path + " does not exist");
    return PosixError("resolve " + path, errno);
  }
  std::string file = resolved;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return PosixError("stat " + file, errno);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(file + " is not a regular file");
  std::string why = untrusted_because(file, st, false);
  for (std::string dir = file; why.empty() && dir != "/";) {
    size_t slash = dir.rfind('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
    if (::stat(dir.c_str(), &st) != 0) return PosixError("stat " + dir, errno);
    why = untrusted_because(dir, st, true);
  }
  if (!why.empty()) return Status::InvalidArgument("not trusted: " + why);
  return file;
}

}  // namespace relive
