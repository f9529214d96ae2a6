#include "transfer/page_cache.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "common/file_util.h"
#include "drivers/criu/page_image.h"

namespace relive::transfer {
namespace {
constexpr uint64_t kPage = 4096;
}

void RangeSet::add(uint64_t start, uint64_t len) {
  uint64_t end = start + len;
  auto it = ranges_.upper_bound(start);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= start) {
      start = prev->first;
      end = std::max(end, prev->second);
      it = ranges_.erase(prev);
    }
  }
  while (it != ranges_.end() && it->first <= end) {
    end = std::max(end, it->second);
    it = ranges_.erase(it);
  }
  ranges_[start] = end;
}

bool RangeSet::covers(uint64_t start, uint64_t len) const {
  auto it = ranges_.upper_bound(start);
  if (it == ranges_.begin()) return false;
  --it;
  return it->first <= start && it->second >= start + len;
}

uint64_t RangeSet::bytes() const {
  uint64_t n = 0;
  for (const auto& [s, e] : ranges_) n += e - s;
  return n;
}

Result<PageCache> PageCache::create(const std::string& dir) {
  RELIVE_RETURN_IF_ERROR(make_dirs(dir));
  return PageCache(dir);
}

Result<int> PageCache::file_for(pid_t pid) {
  auto it = files_.find(pid);
  if (it != files_.end()) return it->second.get();
  std::string path = fmt::format("{}/mem-{}.cache", dir_, pid);
  ScopedFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return PosixError("create " + path, errno);
  int raw = fd.get();
  files_.emplace(pid, std::move(fd));
  return raw;
}

off_t PageCache::offset_of(pid_t pid, uint64_t vaddr) {
  constexpr int kRegionShift = 30;
  auto& slots = slots_[pid];
  auto [it, added] = slots.try_emplace(vaddr >> kRegionShift, slots.size());
  return static_cast<off_t>((it->second << kRegionShift) | (vaddr & ((1ull << kRegionShift) - 1)));
}

Status read_page_round(security::Channel* channel, const PageRunSink& sink) {
  BulkReceiver in(channel);
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> events, in.next());
    for (const std::string& ev : events) {
      if (ev.size() < 16) return Status::Corruption("page event too short");
      pid_t pid = static_cast<pid_t>(event_u32(ev, 0));
      uint64_t n = event_u32(ev, 4), vaddr = event_u64(ev, 8);
      if (pid == 0 && n == 0) return Status::Ok();  // the end of the round
      if (ev.size() != 16 + n * kPage || vaddr % kPage != 0 || pid <= 0) {
        return Status::Corruption(
            fmt::format("malformed page event for pid {} at {:#x}", pid, vaddr));
      }
      RELIVE_RETURN_IF_ERROR(sink(pid, vaddr, std::string_view(ev).substr(16)));
    }
  }
}

Status PageCache::receive(security::Channel* channel, const migration::PageRound& round) {
  (void)round;  // its page count is for progress; the stream's end event ends the round
  return read_page_round(channel, [this](pid_t pid, uint64_t vaddr, std::string_view pages) {
    return put(pid, vaddr, pages);
  });
}

Status PageCache::put(pid_t pid, uint64_t vaddr, std::string_view pages) {
  RELIVE_ASSIGN_OR_RETURN(int fd, file_for(pid));
  uint64_t n = pages.size() / kPage;
  // Page by page: a run may cross a region boundary.
  for (uint64_t i = 0; i < n; ++i) {
    if (::pwrite(fd, pages.data() + i * kPage, kPage, offset_of(pid, vaddr + i * kPage)) !=
        static_cast<ssize_t>(kPage)) {
      return PosixError("write page cache", errno);
    }
  }
  have_[pid].add(vaddr, n * kPage);
  pages_received_ += n;
  return Status::Ok();
}

Status PageCache::read_page(pid_t pid, uint64_t vaddr, char* out) {
  auto h = have_.find(pid);
  if (h == have_.end() || !h->second.covers(vaddr, kPage)) {
    return Status::NotFound(fmt::format("page {:#x} of pid {} was never sent", vaddr, pid));
  }
  int fd = files_.at(pid).get();
  if (::pread(fd, out, kPage, offset_of(pid, vaddr)) != static_cast<ssize_t>(kPage)) {
    return PosixError("read page cache", errno);
  }
  return Status::Ok();
}

// Copies [vaddr, vaddr + len) of `pid` from the cache into `out` with as few reads as the
// regions allow. NotFound (naming the page) when a page never arrived.
Status PageCache::read_run(pid_t pid, uint64_t vaddr, uint64_t len, char* out) {
  auto h = have_.find(pid);
  if (h == have_.end() || !h->second.covers(vaddr, len)) {
    for (uint64_t v = vaddr; v < vaddr + len; v += kPage)
      RELIVE_RETURN_IF_ERROR(read_page(pid, v, out + (v - vaddr)));  // names the missing page
  }
  int fd = files_.at(pid).get();
  constexpr uint64_t kRegion = 1ull << 30;
  for (uint64_t done = 0; done < len;) {
    uint64_t v = vaddr + done;
    uint64_t n = std::min(len - done, kRegion - (v & (kRegion - 1)));  // stay in one region
    if (::pread(fd, out + done, n, offset_of(pid, v)) != static_cast<ssize_t>(n))
      return PosixError("read page cache", errno);
    done += n;
  }
  return Status::Ok();
}

// Writes pages-<id>.img for every pagemap-<pid>.img in `images_dir`, entry by entry in pagemap
// order, in reads and writes of up to 64 MiB.
Status PageCache::rebuild_pages_images(const std::string& images_dir) {
  constexpr uint64_t kChunk = 64ull << 20;
  std::string buf;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(images_dir, ec)) {
    std::string name = e.path().filename().string();
    if (!name.starts_with("pagemap-") || name.starts_with("pagemap-shmem")) continue;
    pid_t pid = std::atoi(name.c_str() + 8);
    RELIVE_ASSIGN_OR_RETURN(std::string pagemap, read_file(e.path().string()));
    RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, criu::decode_pagemap_image(pagemap));
    std::string path = fmt::format("{}/pages-{}.img", images_dir, image.pages_id);
    ScopedFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!out.valid()) return PosixError("create " + path, errno);
    for (const criu::PagemapEntry& entry : image.entries) {
      if (!entry.present()) continue;
      uint64_t len = entry.nr_pages * kPage;
      for (uint64_t done = 0; done < len; done += kChunk) {
        uint64_t n = std::min(kChunk, len - done);
        buf.resize(n);
        Status st = read_run(pid, entry.vaddr + done, n, buf.data());
        if (!st.ok()) return st.with_context(name);
        RELIVE_RETURN_IF_ERROR(write_all(out.get(), buf));
      }
    }
  }
  if (ec) return Status::IoError("list " + images_dir + ": " + ec.message());
  return Status::Ok();
}

PageSender::PageSender(security::Channel* channel) : out_(channel) {}

Status PageSender::add(pid_t pid, uint64_t vaddr, std::string_view bytes) {
  constexpr size_t kMaxEventPages = 256;
  for (size_t at = 0; at < bytes.size(); at += kMaxEventPages * kPage) {
    size_t len = std::min(bytes.size() - at, kMaxEventPages * kPage);
    std::string ev = event_header(static_cast<uint32_t>(pid), static_cast<uint32_t>(len / kPage));
    append_u64(&ev, vaddr + at);
    ev.append(bytes.substr(at, len));
    RELIVE_RETURN_IF_ERROR(out_.add(ev));
    pages_ += len / kPage;
  }
  return Status::Ok();
}

Status PageSender::finish() {
  std::string end = event_header(0, 0);
  append_u64(&end, 0);
  RELIVE_RETURN_IF_ERROR(out_.add(end));
  return out_.flush();
}

}  // namespace relive::transfer
