#include "dirty/uffd_install.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/userfaultfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "dirty/uffd_abi.h"

namespace relive::dirty {
namespace {

constexpr uint64_t kFeatures = abi::kFeatureWpAsync | abi::kFeatureWpUnpopulated;
// The userfaultfd goes to the lowest free number at or above min(RLIMIT_NOFILE, kFdCeiling) -
// kFdGap: out of the way of the program's own numbering, without growing a huge fd table.
constexpr int kFdCeiling = 1024, kFdGap = 32;

bool is_special(const std::string& path) {
  return path == "[vvar]" || path == "[vdso]" || path == "[vsyscall]" || path == "[vvar_vclock]";
}

// The soft RLIMIT_NOFILE of `pid`, from /proc/PID/limits.
int soft_nofile(pid_t pid) {
  auto limits = read_file(fmt::format("/proc/{}/limits", pid));
  if (!limits.ok()) return kFdCeiling;
  size_t at = limits->find("Max open files");
  if (at == std::string::npos) return kFdCeiling;
  long soft = std::strtol(limits->c_str() + at + 14, nullptr, 10);
  return soft > 0 ? static_cast<int>(std::min<long>(soft, 1 << 30)) : kFdCeiling;
}

Result<ino_t> fd_inode(pid_t pid, int fd) {
  struct stat st {};
  if (::stat(fmt::format("/proc/{}/fd/{}", pid, fd).c_str(), &st) != 0)
    return PosixError(fmt::format("stat fd {} of process {}", fd, pid), errno);
  return st.st_ino;
}

// Creates the userfaultfd at a high number and negotiates async WP through `scratch`.
Result<int> create_uffd(SeizedThread& t, uint64_t scratch) {
  RELIVE_ASSIGN_OR_RETURN(int64_t low, t.call_ok("userfaultfd", SYS_userfaultfd,
                                                 {O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY}));
  int base = std::max(3, std::min(soft_nofile(t.pid()), kFdCeiling) - kFdGap);
  auto high = t.call_ok("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl,
                        {static_cast<uint64_t>(low), F_DUPFD_CLOEXEC, static_cast<uint64_t>(base)});
  RELIVE_RETURN_IF_ERROR(t.call(SYS_close, {static_cast<uint64_t>(low)}).status());
  if (!high.ok()) return high.status();
  int fd = static_cast<int>(*high);
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = kFeatures;
  Status st = t.task().write_mem(scratch, &api, sizeof api);
  auto rv = st.ok() ? t.call(SYS_ioctl, {static_cast<uint64_t>(fd), UFFDIO_API, scratch})
                    : Result<int64_t>(st);
  if (rv.ok() && *rv == 0) st = t.task().read_mem(scratch, &api, sizeof api);
  if (rv.ok() && *rv == 0 && st.ok() && (api.features & kFeatures) == kFeatures) return fd;
  (void)t.call(SYS_close, {static_cast<uint64_t>(fd)});
  if (!rv.ok()) return rv.status();
  if (!st.ok()) return st;
  return Status::Unsupported(fmt::format(
      "the kernel does not offer async userfaultfd write-protection (UFFDIO_API: {})", *rv));
}

// Runs one userfaultfd ioctl per range with its argument struct, from an array written to
// `scratch`; returns the ranges for which it succeeded. Errors of a vanished or special
// mapping leave that range out; others fail.
template <typename Arg, typename MakeArg>
Result<std::vector<PageRange>> per_range_ioctl(SeizedThread& t, int fd, uint64_t scratch,
                                               unsigned long request,
                                               const std::vector<PageRange>& ranges,
                                               MakeArg make_arg) {
  std::vector<Arg> args;
  for (const PageRange& r : ranges) args.push_back(make_arg(r));
  RELIVE_RETURN_IF_ERROR(t.task().write_mem(scratch, args.data(), args.size() * sizeof(Arg)));
  std::vector<PageRange> done;
  for (size_t i = 0; i < ranges.size(); ++i) {
    RELIVE_ASSIGN_OR_RETURN(int64_t rv, t.call(SYS_ioctl, {static_cast<uint64_t>(fd), request,
                                                           scratch + i * sizeof(Arg)}));
    if (rv == 0) {
      done.push_back(ranges[i]);
    } else if (rv != -EINVAL && rv != -ENOMEM && rv != -ENOENT && rv != -EPERM) {
      return PosixError(fmt::format("injected userfaultfd ioctl on [{:#x}, {:#x})", ranges[i].start,
                                    ranges[i].end()),
                        static_cast<int>(-rv));
    }
  }
  return done;
}

Result<std::vector<PageRange>> register_and_protect(SeizedThread& t, int fd, uint64_t scratch,
                                                    const std::vector<PageRange>& candidates) {
  RELIVE_ASSIGN_OR_RETURN(
      auto registered, per_range_ioctl<uffdio_register>(t, fd, scratch, UFFDIO_REGISTER, candidates,
                                                        [](const PageRange& r) {
                                                          uffdio_register a{};
                                                          a.range = {r.start, r.pages * kPageSize};
                                                          a.mode = UFFDIO_REGISTER_MODE_WP;
                                                          return a;
                                                        }));
  return per_range_ioctl<uffdio_writeprotect>(t, fd, scratch, UFFDIO_WRITEPROTECT, registered,
                                              [](const PageRange& r) {
                                                uffdio_writeprotect a{};
                                                a.range = {r.start, r.pages * kPageSize};
                                                a.mode = UFFDIO_WRITEPROTECT_MODE_WP;
                                                return a;
                                              });
}

}  // namespace

std::vector<PageRange> trackable_ranges(const std::vector<tracee::Mapping>& maps) {
  std::vector<PageRange> out;
  for (const tracee::Mapping& m : maps) {
    if (m.perms.size() < 4 || m.perms[1] != 'w' || m.perms[3] != 'p' || is_special(m.path))
      continue;
    out.push_back({m.start, (m.end - m.start) / kPageSize});
  }
  return out;
}

Result<InstalledUffd> install_uffd(SeizedThread& t, const std::vector<PageRange>& candidates) {
  uint64_t bytes = std::max(sizeof(uffdio_api), candidates.size() * sizeof(uffdio_register));
  uint64_t size = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  RELIVE_ASSIGN_OR_RETURN(int64_t scratch,
                          t.call_ok("mmap", SYS_mmap,
                                    {0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                     static_cast<uint64_t>(-1), 0}));
  auto addr = static_cast<uint64_t>(scratch);
  InstalledUffd out;
  Result<int> fd = create_uffd(t, addr);
  Result<std::vector<PageRange>> tracked =
      fd.ok() ? register_and_protect(t, *fd, addr, candidates) : fd.status();
  Result<ino_t> inode = tracked.ok() ? fd_inode(t.pid(), *fd) : tracked.status();
  Status unmapped = t.call_ok("munmap", SYS_munmap, {addr, size}).status();
  if (!inode.ok() || !unmapped.ok()) {
    if (fd.ok()) (void)t.call(SYS_close, {static_cast<uint64_t>(*fd)});
    return inode.ok() ? unmapped : inode.status();
  }
  out.fd = *fd;
  out.inode = *inode;
  out.tracked = std::move(*tracked);
  return out;
}

Result<bool> uffd_still_open(pid_t pid, int fd, ino_t inode) {
  struct stat st {};
  if (::stat(fmt::format("/proc/{}/fd/{}", pid, fd).c_str(), &st) == 0) return st.st_ino == inode;
  std::error_code ec;
  if (!std::filesystem::exists(fmt::format("/proc/{}", pid), ec))
    return Status::NotFound(fmt::format("process {} is gone", pid));
  return false;
}

Status remove_uffd(SeizedThread& t, int fd, ino_t inode) {
  RELIVE_ASSIGN_OR_RETURN(bool ours, uffd_still_open(t.pid(), fd, inode));
  if (!ours) return Status::Ok();
  return t.call_ok("close", SYS_close, {static_cast<uint64_t>(fd)}).status();
}

}  // namespace relive::dirty
