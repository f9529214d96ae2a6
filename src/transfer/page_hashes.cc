#include "transfer/page_hashes.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/scoped_fd.h"
#include "dirty/page_reader.h"
#include "tracee/process_info.h"

namespace relive::transfer {
namespace {

constexpr uint64_t kPage = criu::kImagePageSize;

Result<criu::PagemapImage> load_pagemap(const std::string& dir, pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(std::string pm, read_file(fmt::format("{}/pagemap-{}.img", dir, pid)));
  return criu::decode_pagemap_image(pm);
}

}  // namespace

std::string page_hashes_name(pid_t pid) { return fmt::format("page-hashes-{}", pid); }

std::vector<criu::VaddrRange> lazy_ranges(const criu::PagemapImage& image) {
  std::vector<criu::VaddrRange> out;
  for (const criu::PagemapEntry& e : image.entries)
    if (!e.present() && e.has_flags && (e.flags & criu::kPeLazy) != 0)
      out.push_back({e.vaddr, e.nr_pages});
  return out;
}

namespace {

void add_page(std::vector<criu::VaddrRange>* ranges, uint64_t vaddr) {
  if (!ranges->empty() && ranges->back().end() == vaddr)
    ++ranges->back().pages;
  else
    ranges->push_back({vaddr, 1});
}

// The hash of every page of `ranges` (in order) in `pid`'s memory; `unread[i]` is set for each
// page that could not be read. Hashed where the reader put the pages (no copy), split between
// two threads: a frozen process leaves the machine's cores to its migration.
struct PageHashes {
  std::vector<uint64_t> hashes;
  std::vector<bool> unread;
};

Result<PageHashes> hash_process_pages(pid_t pid, const std::vector<criu::VaddrRange>& ranges) {
  PageHashes out;
  uint64_t total = 0;
  std::vector<uint64_t> first;  // index of each range's first page
  for (const criu::VaddrRange& r : ranges) first.push_back(total), total += r.pages;
  out.hashes.assign(total, 0);
  out.unread.assign(total, true);
  auto part = [&](size_t from, size_t to, std::vector<bool>* seen) -> Status {
    std::vector<dirty::PageRange> want;
    for (size_t i = from; i < to; ++i) want.push_back({ranges[i].start, ranges[i].pages});
    size_t cur = from;
    auto sink = [&](uint64_t vaddr, std::string_view bytes) {
      for (size_t at = 0; at < bytes.size(); at += kPage) {
        uint64_t v = vaddr + at;
        while (cur < to && v >= ranges[cur].end()) ++cur;  // the reader goes in address order
        if (cur == to || v < ranges[cur].start) {
          cur = from;  // a range out of order: look it up from the start
          while (cur < to && !(v >= ranges[cur].start && v < ranges[cur].end())) ++cur;
          if (cur == to) return Status::Corruption(fmt::format("page {:#x} was not asked for", v));
        }
        uint64_t index = first[cur] + (v - ranges[cur].start) / kPage;
        out.hashes[index] = hash64(bytes.substr(at, kPage));
        (*seen)[index] = true;
      }
      return Status::Ok();
    };
    return dirty::read_pages(pid, want, sink).status();
  };
  // Two halves by page count; vector<bool> packs bits, so each thread marks its own vector.
  size_t split = 0;
  for (uint64_t pages = 0; split < ranges.size() && pages * 2 < total; ++split)
    pages += ranges[split].pages;
  std::vector<bool> seen_a(total, false), seen_b(total, false);
  Status second = Status::Ok();
  std::thread helper;
  if (split < ranges.size() && total >= 4096)
    helper = std::thread([&] { second = part(split, ranges.size(), &seen_b); });
  else
    split = ranges.size();
  Status first_half = part(0, split, &seen_a);
  if (helper.joinable()) helper.join();
  RELIVE_RETURN_IF_ERROR(first_half);
  RELIVE_RETURN_IF_ERROR(second);
  for (uint64_t i = 0; i < total; ++i) out.unread[i] = !(seen_a[i] || seen_b[i]);
  return out;
}

}  // namespace

Result<PageHashTable> PageHashTable::of_anonymous_memory(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(std::vector<tracee::Mapping> maps, tracee::read_maps(pid));
  PageHashTable t;
  for (const tracee::Mapping& m : maps) {
    bool anonymous =
        m.path.empty() || m.path == "[heap]" || m.path == "[stack]" || m.path.starts_with("[anon:");
    if (m.perms.size() < 4 || m.perms[3] != 'p' || !anonymous || m.end <= m.start) continue;
    t.ranges_.push_back({m.start, (m.end - m.start) / kPage});
  }
  std::sort(t.ranges_.begin(), t.ranges_.end(),
            [](const auto& a, const auto& b) { return a.start < b.start; });
  uint64_t total = 0;
  for (const criu::VaddrRange& r : t.ranges_) t.first_.push_back(total), total += r.pages;
  RELIVE_ASSIGN_OR_RETURN(PageHashes h, hash_process_pages(pid, t.ranges_));
  t.hashes_ = std::move(h.hashes);
  t.unread_ = std::move(h.unread);
  return t;
}

std::optional<size_t> PageHashTable::index_of(uint64_t vaddr, size_t* hint) const {
  size_t r = ranges_.size();
  if (hint != nullptr && *hint < ranges_.size()) {
    // In address order the page is mostly in the hinted range or the next one.
    for (size_t i = *hint; i < ranges_.size() && i < *hint + 2 && ranges_[i].start <= vaddr; ++i)
      if (vaddr < ranges_[i].end()) r = i;
  }
  if (r == ranges_.size()) {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), vaddr,
                               [](uint64_t v, const criu::VaddrRange& x) { return v < x.start; });
    if (it == ranges_.begin()) return std::nullopt;
    --it;
    if (vaddr >= it->end()) return std::nullopt;
    r = static_cast<size_t>(it - ranges_.begin());
  }
  if (hint != nullptr) *hint = r;
  return first_[r] + (vaddr - ranges_[r].start) / kPage;
}

std::optional<uint64_t> PageHashTable::find(uint64_t vaddr, size_t* hint) const {
  std::optional<size_t> index = index_of(vaddr, hint);
  if (!index || unread_[*index]) return std::nullopt;
  return hashes_[*index];
}

uint64_t PageHashTable::hashed_pages() const {
  return static_cast<uint64_t>(std::count(unread_.begin(), unread_.end(), false));
}

Status PageHashTable::rehash(pid_t pid, const std::vector<dirty::PageRange>& pages) {
  // The parts of `pages` the table covers, as ranges in address order.
  std::vector<criu::VaddrRange> want;
  for (const dirty::PageRange& p : pages) {
    uint64_t lo = p.start, hi = p.end();
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), lo,
                               [](uint64_t v, const criu::VaddrRange& r) { return v < r.start; });
    if (it != ranges_.begin()) --it;
    for (; it != ranges_.end() && it->start < hi; ++it) {
      uint64_t from = std::max(lo, it->start), to = std::min(hi, it->end());
      if (from < to) want.push_back({from, (to - from) / kPage});
    }
  }
  if (want.empty()) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(PageHashes h, hash_process_pages(pid, want));
  size_t k = 0, hint = 0;
  for (const criu::VaddrRange& r : want)
    for (uint64_t i = 0; i < r.pages; ++i, ++k) {
      size_t index = *index_of(r.start + i * kPage, &hint);
      hashes_[index] = h.hashes[k];
      unread_[index] = h.unread[k];
    }
  return Status::Ok();
}

void PageHashTable::keep_only(const std::vector<dirty::PageRange>& vouched) {
  size_t v = 0;
  for (size_t r = 0; r < ranges_.size(); ++r)
    for (uint64_t i = 0; i < ranges_[r].pages; ++i) {
      uint64_t page = ranges_[r].start + i * kPage;
      while (v < vouched.size() && vouched[v].end() <= page) ++v;
      if (v == vouched.size() || page < vouched[v].start) unread_[first_[r] + i] = true;
    }
}

namespace {

// The hash of each page of `ranges` (in order): from `ahead` where it has one, the rest read
// from `pid` now (counted in `*read_now` when given); empty for a page that could not be read.
Result<std::vector<std::optional<uint64_t>>> hashes_of(pid_t pid,
                                                       const std::vector<criu::VaddrRange>& ranges,
                                                       const PageHashTable* ahead,
                                                       uint64_t* read_now = nullptr) {
  uint64_t total = 0;
  for (const criu::VaddrRange& r : ranges) total += r.pages;
  std::vector<std::optional<uint64_t>> have(total);
  std::vector<criu::VaddrRange> missing;
  size_t index = 0, hint = 0;
  for (const criu::VaddrRange& r : ranges)
    for (uint64_t i = 0; i < r.pages; ++i, ++index) {
      uint64_t v = r.start + i * kPage;
      if (ahead != nullptr) have[index] = ahead->find(v, &hint);
      if (!have[index]) add_page(&missing, v);
    }
  if (read_now != nullptr)
    for (const criu::VaddrRange& r : missing) *read_now += r.pages;
  if (!missing.empty()) {
    RELIVE_ASSIGN_OR_RETURN(PageHashes h, hash_process_pages(pid, missing));
    size_t k = 0;  // `missing` lists the empty slots of `have` in order
    for (size_t j = 0; j < total; ++j) {
      if (have[j]) continue;
      if (!h.unread[k]) have[j] = h.hashes[k];
      ++k;
    }
  }
  return have;
}

}  // namespace

Result<LazyHashes> write_lazy_page_hashes(const std::string& dir, pid_t image_pid, pid_t live_pid,
                                          const PageHashTable* ahead) {
  RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, load_pagemap(dir, image_pid));
  std::vector<criu::VaddrRange> ranges = lazy_ranges(image);
  LazyHashes stats;
  RELIVE_ASSIGN_OR_RETURN(auto have, hashes_of(live_pid, ranges, ahead, &stats.read_now));
  stats.pages = have.size();
  std::string bytes;
  bytes.reserve(have.size() * 8);
  size_t index = 0;
  for (const criu::VaddrRange& r : ranges)
    for (uint64_t i = 0; i < r.pages; ++i, ++index) {
      if (!have[index])
        return Status::IoError(
            fmt::format("page {:#x} of process {} cannot be read", r.start + i * kPage, live_pid));
      bytes.append(reinterpret_cast<const char*>(&*have[index]), 8);
    }
  RELIVE_RETURN_IF_ERROR(write_file_atomic(dir + "/" + page_hashes_name(image_pid), bytes));
  return stats;
}

Result<std::vector<criu::VaddrRange>> compare_lazy_pages(const std::string& dir, pid_t dumped_pid,
                                                         pid_t live_pid,
                                                         const PageHashTable* ahead) {
  RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, load_pagemap(dir, dumped_pid));
  RELIVE_ASSIGN_OR_RETURN(std::string want, read_file(dir + "/" + page_hashes_name(dumped_pid)));
  std::vector<criu::VaddrRange> ranges = lazy_ranges(image);
  uint64_t total = 0;
  for (const criu::VaddrRange& r : ranges) total += r.pages;
  if (want.size() != total * 8)
    return Status::Corruption(
        fmt::format("{} page hashes for {} lazy pages", want.size() / 8, total));
  RELIVE_ASSIGN_OR_RETURN(auto have, hashes_of(live_pid, ranges, ahead));
  std::vector<criu::VaddrRange> differ;
  size_t index = 0;
  for (const criu::VaddrRange& r : ranges) {
    for (uint64_t i = 0; i < r.pages; ++i, ++index) {
      uint64_t expected;
      std::memcpy(&expected, want.data() + index * 8, 8);
      if (!have[index] || *have[index] != expected) add_page(&differ, r.start + i * kPage);
    }
  }
  return differ;
}

}  // namespace relive::transfer
