#include "common/private_tmpfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace relive {

Result<PrivateTmpfs> PrivateTmpfs::create(const std::string& source) {
  ScopedFd context(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!context.valid()) return PosixError("fsopen tmpfs", errno);
  if (::fsconfig(context.get(), FSCONFIG_SET_STRING, "source", source.c_str(), 0) != 0)
    return PosixError("naming the tmpfs " + source, errno);
  if (::fsconfig(context.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return PosixError("creating a tmpfs", errno);
  ScopedFd mount(::fsmount(context.get(), FSMOUNT_CLOEXEC, 0));
  if (!mount.valid()) return PosixError("fsmount tmpfs", errno);
  return PrivateTmpfs(std::move(mount));
}

Result<std::string> PrivateTmpfs::read(const std::string& name, size_t max_bytes) const {
  ScopedFd f(::openat(fd_.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!f.valid()) {
    if (errno == ENOENT) return Status::NotFound(name + " is not in the private tmpfs");
    return PosixError("open " + name + " in the private tmpfs", errno);
  }
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) return PosixError("fstat " + name, errno);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(name + " is not a regular file");
  if (static_cast<size_t>(st.st_size) > max_bytes)
    return Status::InvalidArgument(name + " is larger than " + std::to_string(max_bytes) +
                                   " bytes");
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::pread(f.get(), data.data() + got, data.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("read " + name, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

}  // namespace relive
