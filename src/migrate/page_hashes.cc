#include "migrate/page_hashes.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common/file_util.h"
#include "common/hash.h"

namespace relive::migrate {
namespace {

constexpr uint64_t kPage = criu::kImagePageSize;

Result<criu::PagemapImage> load_pagemap(const std::string& dir, pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(std::string pm, read_file(fmt::format("{}/pagemap-{}.img", dir, pid)));
  return criu::decode_pagemap_image(pm);
}

}  // namespace

std::string page_hashes_name(pid_t pid) { return fmt::format("page-hashes-{}", pid); }

Status write_page_hashes(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (!name.starts_with("pagemap-") || name.starts_with("pagemap-shmem")) continue;
    pid_t pid = std::atoi(name.c_str() + 8);
    RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, load_pagemap(dir, pid));
    std::string hashes;
    auto sink = [&](uint64_t, std::string_view bytes) {
      for (size_t at = 0; at < bytes.size(); at += kPage) {
        uint64_t h = hash64(bytes.substr(at, kPage));
        hashes.append(reinterpret_cast<const char*>(&h), 8);
      }
      return Status::Ok();
    };
    RELIVE_RETURN_IF_ERROR(criu::extract_pages(dir, pid, criu::present_ranges(image), sink));
    RELIVE_RETURN_IF_ERROR(write_file_atomic(dir + "/" + page_hashes_name(pid), hashes));
  }
  if (ec) return Status::IoError("list " + dir + ": " + ec.message());
  return Status::Ok();
}

Result<ProcessMemory> ProcessMemory::open(pid_t pid) {
  std::string path = fmt::format("/proc/{}/mem", pid);
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + path, errno);
  return ProcessMemory(std::move(fd));
}

Status ProcessMemory::read_page(uint64_t vaddr, char* out) const {
  ssize_t n = ::pread(fd_.get(), out, kPage, static_cast<off_t>(vaddr));
  if (n != static_cast<ssize_t>(kPage)) {
    return n < 0 ? PosixError(fmt::format("read page {:#x}", vaddr), errno)
                 : Status::NotFound(fmt::format("page {:#x} is not mapped", vaddr));
  }
  return Status::Ok();
}

Result<std::vector<criu::VaddrRange>> differing_pages(const std::string& dir, pid_t dumped_pid,
                                                      pid_t live_pid) {
  RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, load_pagemap(dir, dumped_pid));
  RELIVE_ASSIGN_OR_RETURN(std::string hashes, read_file(dir + "/" + page_hashes_name(dumped_pid)));
  RELIVE_ASSIGN_OR_RETURN(ProcessMemory mem, ProcessMemory::open(live_pid));
  std::vector<criu::VaddrRange> differ;
  std::string page(kPage, '\0');
  size_t index = 0;
  for (const criu::VaddrRange& r : criu::present_ranges(image)) {
    for (uint64_t i = 0; i < r.pages; ++i, ++index) {
      if ((index + 1) * 8 > hashes.size())
        return Status::Corruption("page hashes are shorter than the pagemap");
      uint64_t want;
      std::memcpy(&want, hashes.data() + index * 8, 8);
      uint64_t vaddr = r.start + i * kPage;
      bool same = mem.read_page(vaddr, page.data()).ok() && hash64(page) == want;
      if (same) continue;
      if (!differ.empty() && differ.back().end() == vaddr) ++differ.back().pages;
      else differ.push_back({vaddr, 1});
    }
  }
  if (index * 8 != hashes.size()) return Status::Corruption("page hashes do not fit the pagemap");
  return differ;
}

}  // namespace relive::migrate
