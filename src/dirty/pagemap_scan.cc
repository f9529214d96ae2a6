#include "dirty/pagemap_scan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/ioctl.h>

#include <cerrno>

#include "dirty/uffd_abi.h"

namespace relive::dirty {
namespace {

constexpr size_t kRegionsPerCall = 4096;

// Regions the kernel copied out; the vector is zeroed before each call, so this also counts
// what a failed call managed to report (an ioctl error hides the count).
void append_regions(const std::vector<abi::PageRegion>& vec, size_t n,
                    std::vector<PageRange>* out) {
  for (size_t i = 0; i < n && vec[i].end > vec[i].start; ++i)
    out->push_back({vec[i].start, (vec[i].end - vec[i].start) / kPageSize});
}

}  // namespace

Result<PagemapScanner> PagemapScanner::open(pid_t pid) {
  std::string path = fmt::format("/proc/{}/pagemap", pid);
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::NotFound(fmt::format("no process {}", pid));
    return PosixError("open " + path, errno);
  }
  return PagemapScanner(std::move(fd), pid);
}

Status PagemapScanner::scan(uint64_t start, uint64_t end, const ScanQuery& q,
                            std::vector<PageRange>* out) const {
  std::vector<abi::PageRegion> vec(kRegionsPerCall);
  for (uint64_t cur = start; cur < end;) {
    std::fill(vec.begin(), vec.end(), abi::PageRegion{});
    abi::PmScanArg arg{};
    arg.size = sizeof arg;
    arg.flags = q.write_protect ? abi::kScanWpMatching | abi::kScanCheckWpAsync : 0;
    arg.start = cur;
    arg.end = end;
    arg.vec = reinterpret_cast<uint64_t>(vec.data());
    arg.vec_len = vec.size();
    arg.category_mask = q.category_mask;
    arg.category_inverted = q.category_inverted;
    arg.return_mask = q.return_mask;
    int n = ::ioctl(fd_.get(), abi::kPagemapScan, &arg);
    if (n < 0) {
      int e = errno;
      append_regions(vec, vec.size(), out);
      if (e == EPERM)
        return Status::Unsupported(fmt::format(
            "[{:#x}, {:#x}) of process {} holds a mapping not registered for write tracking", cur,
            end, pid_));
      if (e == ESRCH) return Status::NotFound(fmt::format("process {} is gone", pid_));
      return PosixError(fmt::format("PAGEMAP_SCAN of process {}", pid_), e);
    }
    append_regions(vec, static_cast<size_t>(n), out);
    if (arg.walk_end <= cur)
      return Status::IoError(fmt::format("PAGEMAP_SCAN made no progress at {:#x}", cur));
    cur = arg.walk_end;
  }
  return Status::Ok();
}

}  // namespace relive::dirty
