#include "drivers/criu/page_image.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "common/check.h"
#include "common/file_util.h"
#include "common/scoped_fd.h"
#include "drivers/criu/pb_reader.h"
#include "drivers/criu/pb_writer.h"

namespace relive::criu {
namespace {

// From CRIU's criu/include/magic.h.
constexpr uint32_t kImgCommonMagic = 0x54564319;
constexpr uint32_t kPagemapMagic = 0x56084025;
// A bound far above any real process, so that sums cannot overflow.
constexpr uint64_t kMaxPages = uint64_t{1} << 40;
constexpr uint64_t kChunkBytes = 1u << 20;

// Field numbers from images/pagemap.proto.
enum : uint32_t { kHeadPagesId = 1 };
enum : uint32_t { kEntryVaddr = 1, kEntryNrPages = 2, kEntryInParent = 3, kEntryFlags = 4 };

bool no_nested(uint32_t, std::string_view) { return true; }

Status parse_entry(std::string_view m, PagemapEntry* e) {
  bool has_vaddr = false, has_nr = false;
  bool ok = pb::walk(
      m,
      [&](uint32_t f, uint64_t v) {
        if (f == kEntryVaddr) e->vaddr = v, has_vaddr = true;
        if (f == kEntryNrPages) e->nr_pages = v, has_nr = true;
        if (f == kEntryInParent) e->in_parent = v != 0;
        if (f == kEntryFlags) e->has_flags = true, e->flags = static_cast<uint32_t>(v);
      },
      no_nested);
  if (!ok || !has_vaddr || !has_nr) return Status::Corruption("pagemap entry does not decode");
  // nr_pages is a uint32 field: CRIU would read a larger value truncated.
  if (e->vaddr % kImagePageSize != 0 || e->nr_pages > UINT32_MAX ||
      e->vaddr > UINT64_MAX - e->nr_pages * kImagePageSize)
    return Status::Corruption(
        fmt::format("pagemap entry {:#x} +{} pages is not a valid range", e->vaddr, e->nr_pages));
  return Status::Ok();
}

// The offset of the first object after the magic(s); old images carry no IMG_COMMON_MAGIC.
Result<size_t> skip_magic(std::string_view image) {
  if (image.size() >= 8 && pb::le32(image, 0) == kImgCommonMagic &&
      pb::le32(image, 4) == kPagemapMagic)
    return size_t{8};
  if (image.size() >= 4 && pb::le32(image, 0) == kPagemapMagic) return size_t{4};
  return Status::Corruption("not a CRIU pagemap image (bad magic)");
}

// Splits the rest of the image into its length-prefixed objects.
Status next_object(std::string_view* rest, std::string_view* object) {
  if (!pb::next_object(rest, object))
    return Status::Corruption("pagemap image ends inside an object");
  return Status::Ok();
}

// Sorts `ranges` and merges the overlapping ones, and the adjacent ones if `join_adjacent`.
std::vector<VaddrRange> normalize(std::vector<VaddrRange> ranges, bool join_adjacent = true) {
  std::sort(ranges.begin(), ranges.end(),
            [](const VaddrRange& a, const VaddrRange& b) { return a.start < b.start; });
  std::vector<VaddrRange> out;
  for (const VaddrRange& r : ranges) {
    if (r.pages == 0) continue;
    if (!out.empty() &&
        (r.start < out.back().end() || (join_adjacent && r.start == out.back().end())))
      out.back().pages = (std::max(out.back().end(), r.end()) - out.back().start) / kImagePageSize;
    else
      out.push_back(r);
  }
  return out;
}

// A present entry and where its pages start in the pages image.
struct Located {
  PagemapEntry entry;
  uint64_t offset = 0;
};

std::vector<Located> locate_present(const PagemapImage& image) {
  std::vector<Located> out;
  uint64_t offset = 0;
  for (const PagemapEntry& e : image.entries) {
    if (!e.present()) continue;
    out.push_back({e, offset});
    offset += e.nr_pages * kImagePageSize;
  }
  std::sort(out.begin(), out.end(),
            [](const Located& a, const Located& b) { return a.entry.vaddr < b.entry.vaddr; });
  return out;
}

// Passes [start, end) of the pages file, which holds the pages from `vaddr` on, to `sink`.
Status read_span(int fd, const std::string& path, uint64_t offset, uint64_t len, uint64_t vaddr,
                 const ImagePageSink& sink) {
  std::string buf;
  for (uint64_t done = 0; done < len;) {
    uint64_t n = std::min(len - done, kChunkBytes);
    buf.resize(n);
    ssize_t got = ::pread(fd, buf.data(), n, static_cast<off_t>(offset + done));
    if (got != static_cast<ssize_t>(n))
      return got < 0 ? PosixError("read " + path, errno)
                     : Status::Corruption(path + " is shorter than its pagemap says");
    RELIVE_RETURN_IF_ERROR(sink(vaddr + done, buf));
    done += n;
  }
  return Status::Ok();
}

bool valid_range(const VaddrRange& r) {
  return r.start % kImagePageSize == 0 && r.pages <= kMaxPages &&
         r.start <= UINT64_MAX - r.pages * kImagePageSize;
}

PagemapEntry present_entry(const VaddrRange& r) {
  return {.vaddr = r.start, .nr_pages = r.pages, .has_flags = true, .flags = kPePresent};
}

// The entries of `image` as ranges sorted by address, overlapping ones merged; Unsupported when
// an entry's pages are not in this dump's pages image.
Result<std::vector<VaddrRange>> present_only_ranges(const PagemapImage& image) {
  std::vector<VaddrRange> ranges;
  for (const PagemapEntry& e : image.entries) {
    if (!e.present() || e.in_parent || (e.flags & kPeParent) != 0)
      return Status::Unsupported(
          fmt::format("pagemap entry {:#x} +{} pages is not present (flags {:#x}, in_parent {})",
                      e.vaddr, e.nr_pages, e.flags, e.in_parent));
    VaddrRange r{e.vaddr, e.nr_pages};
    if (!valid_range(r))
      return Status::InvalidArgument(
          fmt::format("pagemap entry {:#x} +{} pages is not a valid range", r.start, r.pages));
    ranges.push_back(r);
  }
  return normalize(std::move(ranges), /*join_adjacent=*/false);
}

}  // namespace

Result<PagemapImage> decode_pagemap_image(std::string_view image) {
  RELIVE_ASSIGN_OR_RETURN(size_t offset, skip_magic(image));
  std::string_view rest = image.substr(offset), object;
  RELIVE_RETURN_IF_ERROR(next_object(&rest, &object));
  PagemapImage out;
  bool has_id = false;
  bool ok = pb::walk(
      object,
      [&](uint32_t f, uint64_t v) {
        if (f == kHeadPagesId) out.pages_id = static_cast<uint32_t>(v), has_id = true;
      },
      no_nested);
  if (!ok || !has_id) return Status::Corruption("pagemap head does not decode");
  uint64_t pages = 0;
  while (!rest.empty()) {
    RELIVE_RETURN_IF_ERROR(next_object(&rest, &object));
    PagemapEntry e;
    RELIVE_RETURN_IF_ERROR(parse_entry(object, &e));
    pages += e.nr_pages;
    if (pages > kMaxPages) return Status::Corruption("pagemap lists too many pages");
    out.entries.push_back(e);
  }
  return out;
}

std::string encode_pagemap_image(const PagemapImage& image) {
  std::string out, message;
  pb::put_le32(&out, kImgCommonMagic);
  pb::put_le32(&out, kPagemapMagic);
  pb::put_uint(&message, kHeadPagesId, image.pages_id);
  pb::put_object(&out, message);
  for (const PagemapEntry& e : image.entries) {
    RELIVE_CHECK(e.nr_pages <= UINT32_MAX, "entry {:#x} has {} pages", e.vaddr, e.nr_pages);
    message.clear();
    pb::put_uint(&message, kEntryVaddr, e.vaddr);
    pb::put_uint(&message, kEntryNrPages, e.nr_pages);
    if (e.in_parent) pb::put_uint(&message, kEntryInParent, 1);
    if (e.has_flags) pb::put_uint(&message, kEntryFlags, e.flags);
    pb::put_object(&out, message);
  }
  return out;
}

Result<PagemapImage> with_present_pages(const PagemapImage& base,
                                        const std::vector<VaddrRange>& extra) {
  RELIVE_ASSIGN_OR_RETURN(std::vector<VaddrRange> held, present_only_ranges(base));
  for (const VaddrRange& r : extra)
    if (!valid_range(r))
      return Status::InvalidArgument(
          fmt::format("{:#x} +{} pages is not a valid range", r.start, r.pages));
  std::vector<VaddrRange> added = subtract(extra, held);
  std::vector<VaddrRange> all;
  std::merge(held.begin(), held.end(), added.begin(), added.end(), std::back_inserter(all),
             [](const VaddrRange& a, const VaddrRange& b) { return a.start < b.start; });
  PagemapImage out{base.pages_id, {}};
  for (VaddrRange r : all) {
    for (; r.pages > UINT32_MAX;
         r.start += uint64_t{UINT32_MAX} * kImagePageSize, r.pages -= UINT32_MAX)
      out.entries.push_back(present_entry({r.start, UINT32_MAX}));
    out.entries.push_back(present_entry(r));
  }
  return out;
}

std::vector<VaddrRange> present_ranges(const PagemapImage& image) {
  std::vector<VaddrRange> out;
  for (const PagemapEntry& e : image.entries)
    if (e.present()) out.push_back({e.vaddr, e.nr_pages});
  return normalize(std::move(out));
}

std::vector<VaddrRange> subtract(std::vector<VaddrRange> from, std::vector<VaddrRange> clean) {
  from = normalize(std::move(from));
  clean = normalize(std::move(clean));
  std::vector<VaddrRange> out;
  size_t c = 0;
  for (const VaddrRange& r : from) {
    uint64_t at = r.start;
    while (c < clean.size() && clean[c].end() <= at) ++c;
    for (size_t k = c; k < clean.size() && clean[k].start < r.end(); ++k) {
      if (clean[k].start > at) out.push_back({at, (clean[k].start - at) / kImagePageSize});
      at = std::max(at, clean[k].end());
    }
    if (at < r.end()) out.push_back({at, (r.end() - at) / kImagePageSize});
  }
  return out;
}

Status rebuild_pages_image(std::string_view pagemap_image, const PageLookup& lookup,
                           const std::string& out_path) {
  RELIVE_ASSIGN_OR_RETURN(PagemapImage image, decode_pagemap_image(pagemap_image));
  std::string tmp = out_path + ".tmp";
  ScopedFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return PosixError("create " + tmp, errno);
  Status st = [&]() -> Status {
    std::string chunk;
    for (const PagemapEntry& e : image.entries) {
      if (!e.present()) continue;
      for (uint64_t vaddr = e.vaddr; vaddr < e.end(); vaddr += kImagePageSize) {
        chunk.resize(chunk.size() + kImagePageSize);
        std::span<char> page(chunk.data() + chunk.size() - kImagePageSize, kImagePageSize);
        Status found = lookup(vaddr, page);
        if (!found.ok()) return found.with_context(fmt::format("page {:#x}", vaddr));
        if (chunk.size() >= kChunkBytes) RELIVE_RETURN_IF_ERROR(write_all(fd.get(), chunk));
        if (chunk.size() >= kChunkBytes) chunk.clear();
      }
    }
    return write_all(fd.get(), chunk);
  }();
  if (st.ok() && ::rename(tmp.c_str(), out_path.c_str()) != 0)
    st = PosixError("rename " + tmp, errno);
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

Status extract_pages(const std::string& images_dir, pid_t pid,
                     const std::vector<VaddrRange>& ranges, const ImagePageSink& sink,
                     std::vector<VaddrRange>* absent) {
  std::string pagemap_path = fmt::format("{}/pagemap-{}.img", images_dir, pid);
  RELIVE_ASSIGN_OR_RETURN(std::string raw, read_file(pagemap_path));
  auto image = decode_pagemap_image(raw);
  if (!image.ok()) return image.status().with_context(pagemap_path);
  std::string pages_path = fmt::format("{}/pages-{}.img", images_dir, image->pages_id);
  ScopedFd fd(::open(pages_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + pages_path, errno);
  std::vector<Located> present = locate_present(*image);
  for (const VaddrRange& r : normalize(ranges)) {
    for (const Located& l : present) {
      uint64_t start = std::max(r.start, l.entry.vaddr), end = std::min(r.end(), l.entry.end());
      if (start >= end) continue;
      RELIVE_RETURN_IF_ERROR(read_span(fd.get(), pages_path, l.offset + (start - l.entry.vaddr),
                                       end - start, start, sink));
    }
  }
  if (absent != nullptr) {
    auto missing = subtract(ranges, present_ranges(*image));
    absent->insert(absent->end(), missing.begin(), missing.end());
  }
  return Status::Ok();
}

}  // namespace relive::criu
