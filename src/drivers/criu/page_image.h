// CRIU's memory images, decoded and rebuilt: the bridge between CRIU dumps and relive's own page
// transfer (pre-copy migration ships memory ahead of the dump; the dump's pages image is then
// rebuilt from what the destination already holds plus the pages still to ship; HA's per-epoch
// capture extends a base dump's pagemap with the pages written since).
//
// A dump holds, per process, pagemap-<pid>.img (u32 IMG_COMMON_MAGIC, u32 PAGEMAP_MAGIC, then
// length-prefixed protobufs: one PagemapHead{pages_id = 1}, then PagemapEntry{vaddr = 1,
// nr_pages = 2, in_parent = 3, flags = 4} messages; images/pagemap.proto) and pages-<id>.img,
// the raw 4 KiB pages of the present entries, back to back in pagemap order.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "relive/result.h"

namespace relive::criu {

inline constexpr uint64_t kImagePageSize = 4096;

// PagemapEntry flags (CRIU's criu/include/pagemap.h).
inline constexpr uint32_t kPeParent = 1u << 0;   // the pages are in the parent images
inline constexpr uint32_t kPeLazy = 1u << 1;     // served later by the lazy-pages daemon
inline constexpr uint32_t kPePresent = 1u << 2;  // the pages are in this pages image

struct PagemapEntry {
  uint64_t vaddr = 0;
  uint64_t nr_pages = 0;
  bool in_parent = false;
  bool has_flags = false;  // images older than flags carry only in_parent
  uint32_t flags = 0;
  // Whether the pages are in this dump's pages image (as CRIU reads old images too).
  bool present() const { return has_flags ? (flags & kPePresent) != 0 : !in_parent; }
  uint64_t end() const { return vaddr + nr_pages * kImagePageSize; }
  bool operator==(const PagemapEntry&) const = default;
};

struct PagemapImage {
  uint32_t pages_id = 0;  // the pages file is pages-<pages_id>.img
  std::vector<PagemapEntry> entries;
  bool operator==(const PagemapImage&) const = default;
};

// Decodes a whole pagemap image. Corruption on a bad magic, a truncated or undecodable object,
// an entry with a misaligned or overflowing address range.
Result<PagemapImage> decode_pagemap_image(std::string_view image);

// A run of pages [start, start + pages * 4096).
struct VaddrRange {
  uint64_t start = 0;
  uint64_t pages = 0;
  uint64_t end() const { return start + pages * kImagePageSize; }
  bool operator==(const VaddrRange&) const = default;
};

// The image decode_pagemap_image decodes back to `image`: optional fields are written only when
// set (in_parent when true, flags when has_flags), as CRIU writes them. Every entry's nr_pages
// must fit in 32 bits.
std::string encode_pagemap_image(const PagemapImage& image);

// The pagemap of a dump holding the pages of `base` and the `extra` pages (page-aligned ranges):
// `base`'s entries, overlapping ones merged, then a new entry for each run of extra pages `base`
// does not hold, all sorted by address and with flags = kPePresent (CRIU marks the anonymous
// pages of a dump kPePresent | kPeLazy; without the lazy flag a lazy-pages restore restores them
// eagerly, as any restore without --lazy-pages does). Unsupported when an entry of `base` is not
// in its pages image (in the parent images, or left to the lazy-pages daemon); InvalidArgument on
// a misaligned or overflowing range.
Result<PagemapImage> with_present_pages(const PagemapImage& base,
                                        const std::vector<VaddrRange>& extra);

// The present pages of `image`, sorted and merged.
std::vector<VaddrRange> present_ranges(const PagemapImage& image);

// The pages of `from` not in `clean` (both sorted or not; the result is sorted and merged): what
// a pre-copy's final phase must still ship, given the pages the destination holds unchanged.
std::vector<VaddrRange> subtract(std::vector<VaddrRange> from, std::vector<VaddrRange> clean);

// Fills `page` (4096 bytes) with the content of the page at `vaddr`; NotFound if it has none.
using PageLookup = std::function<Status(uint64_t vaddr, std::span<char> page)>;

// Writes the pages image that goes with `pagemap_image` to `out_path` (atomically: a temporary
// file renamed into place), asking `lookup` for every present page in pagemap order. A lookup
// failure fails the rebuild with its Status, naming the page, and leaves no file.
Status rebuild_pages_image(std::string_view pagemap_image, const PageLookup& lookup,
                           const std::string& out_path);

// Receives `bytes` (whole pages) of the dump at `vaddr`; valid only during the call.
using ImagePageSink = std::function<Status(uint64_t vaddr, std::string_view bytes)>;

// Reads the pages of `ranges` that process `pid`'s dump in `images_dir` holds (present entries)
// and passes them to `sink`; requested pages the dump does not hold are appended to `absent`
// (if given). Corruption when the pages image is shorter than its pagemap says.
Status extract_pages(const std::string& images_dir, pid_t pid,
                     const std::vector<VaddrRange>& ranges, const ImagePageSink& sink,
                     std::vector<VaddrRange>* absent = nullptr);

}  // namespace relive::criu
