#include "transfer/page_hashes.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/scoped_fd.h"
#include "dirty/page_reader.h"

namespace relive::transfer {
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

namespace {

constexpr uint64_t kBatchPages = 16384;  // 64 MiB read at a time

void add_page(std::vector<criu::VaddrRange>* ranges, uint64_t vaddr) {
  if (!ranges->empty() && ranges->back().end() == vaddr)
    ++ranges->back().pages;
  else
    ranges->push_back({vaddr, 1});
}

// Reads [vaddr, vaddr + pages) of `pid` into `buf` (zeros where unreadable) and marks what came.
Status read_span(pid_t pid, uint64_t vaddr, uint64_t pages, std::string* buf,
                 std::vector<bool>* got) {
  buf->assign(pages * kPage, '\0');
  got->assign(pages, false);
  auto sink = [&](uint64_t at, std::string_view bytes) {
    std::memcpy(buf->data() + (at - vaddr), bytes.data(), bytes.size());
    for (uint64_t i = 0; i < bytes.size() / kPage; ++i) (*got)[(at - vaddr) / kPage + i] = true;
    return Status::Ok();
  };
  return dirty::read_pages(pid, {{vaddr, pages}}, sink).status();
}

}  // namespace

Result<std::vector<criu::VaddrRange>> build_pages_from_process(const std::string& dir,
                                                               pid_t dumped_pid, pid_t live_pid) {
  RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, load_pagemap(dir, dumped_pid));
  RELIVE_ASSIGN_OR_RETURN(std::string hashes, read_file(dir + "/" + page_hashes_name(dumped_pid)));
  std::string path = fmt::format("{}/pages-{}.img", dir, image.pages_id);
  ScopedFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return PosixError("create " + path, errno);
  std::vector<criu::VaddrRange> differ;
  std::string buf;
  std::vector<bool> got;
  size_t index = 0;
  for (const criu::PagemapEntry& e : image.entries) {
    if (!e.present()) continue;
    for (uint64_t done = 0; done < e.nr_pages; done += kBatchPages) {
      uint64_t n = std::min(kBatchPages, e.nr_pages - done), base = e.vaddr + done * kPage;
      RELIVE_RETURN_IF_ERROR(read_span(live_pid, base, n, &buf, &got));
      for (uint64_t i = 0; i < n; ++i, ++index) {
        if ((index + 1) * 8 > hashes.size())
          return Status::Corruption("page hashes are shorter than the pagemap");
        uint64_t want;
        std::memcpy(&want, hashes.data() + index * 8, 8);
        if (!got[i] || hash64(std::string_view(buf).substr(i * kPage, kPage)) != want)
          add_page(&differ, base + i * kPage);
      }
      RELIVE_RETURN_IF_ERROR(write_all(out.get(), buf));
    }
  }
  if (index * 8 != hashes.size()) return Status::Corruption("page hashes do not fit the pagemap");
  return differ;
}

Status patch_pages_image(const std::string& dir, pid_t dumped_pid,
                         const std::vector<criu::VaddrRange>& ranges,
                         const criu::PageLookup& lookup) {
  if (ranges.empty()) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, load_pagemap(dir, dumped_pid));
  std::string path = fmt::format("{}/pages-{}.img", dir, image.pages_id);
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + path, errno);
  std::string page(kPage, '\0');
  uint64_t offset = 0;  // of the entry's first page in the pages image
  for (const criu::PagemapEntry& e : image.entries) {
    if (!e.present()) continue;
    for (const criu::VaddrRange& r : ranges) {
      uint64_t from = std::max(r.start, e.vaddr), to = std::min(r.end(), e.end());
      for (uint64_t v = from; v < to; v += kPage) {
        RELIVE_RETURN_IF_ERROR(lookup(v, std::span<char>(page.data(), kPage)));
        off_t at = static_cast<off_t>(offset + (v - e.vaddr));
        if (::pwrite(fd.get(), page.data(), kPage, at) != static_cast<ssize_t>(kPage))
          return PosixError("patch " + path, errno);
      }
    }
    offset += e.nr_pages * kPage;
  }
  return Status::Ok();
}

}  // namespace relive::transfer
