// CR/TR-Motion's integrity check: the source's final dump is lazy (its pages stay in the stopped
// process), the source hashes those pages (page-hashes-<pid>: one little-endian XXH3-64 per
// lazy page, in pagemap order) and the destination compares the replayed process's memory
// against them. Pages that differ (a
// nondeterminism the log did not capture: on these machines, rdtsc) are the only memory that
// travels, so the migrated process is always the source's, byte for byte.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "dirty/page_range.h"
#include "drivers/criu/page_image.h"
#include "relive/result.h"

namespace relive::transfer {

std::string page_hashes_name(pid_t pid);

// The pages a lazy dump (`criu dump --lazy-pages`) left out of its pages image: the entries
// flagged lazy and not present, in pagemap order. A lazy-pages daemon fetches them at restore.
std::vector<criu::VaddrRange> lazy_ranges(const criu::PagemapImage& image);

// Hashes of a process's pages taken ahead of the check: CR/TR's destination hashes its replayed
// process while the source is still dumping and hashing, so that its check is mostly lookups.
class PageHashTable {
 public:
  // Every page of `pid`'s private anonymous mappings (what a lazy dump leaves out).
  static Result<PageHashTable> of_anonymous_memory(pid_t pid);
  // The page's hash; nullopt when it was not hashed or could not be read. `hint` (a range
  // index the previous call left there) makes lookups in address order cheap.
  std::optional<uint64_t> find(uint64_t vaddr, size_t* hint = nullptr) const;
  uint64_t pages() const { return hashes_.size(); }
  // Pages of the table that hold a hash.
  uint64_t hashed_pages() const;

  // Hashes again the pages of `pages` that the table covers, read from `pid` now (a page that
  // can no longer be read loses its hash). Keeps the table current for a process whose written
  // pages a dirty tracker reports (transfer/hash_keeper.h).
  Status rehash(pid_t pid, const std::vector<dirty::PageRange>& pages);
  // Drops the hash of every page outside `vouched` (sorted, disjoint): pages nobody watched
  // since they were hashed.
  void keep_only(const std::vector<dirty::PageRange>& vouched);

 private:
  // The index of the page at `vaddr`; nullopt when the table does not cover it. `hint`: as for
  // find().
  std::optional<size_t> index_of(uint64_t vaddr, size_t* hint = nullptr) const;

  std::vector<criu::VaddrRange> ranges_;  // sorted, disjoint
  std::vector<uint64_t> first_;           // index of each range's first page
  std::vector<uint64_t> hashes_;
  std::vector<bool> unread_;
};

// What write_lazy_page_hashes() hashed.
struct LazyHashes {
  uint64_t pages = 0;     // lazy pages in the dump
  uint64_t read_now = 0;  // of which `ahead` lacked a hash: read and hashed by the call
};

// Writes page-hashes-<image_pid> next to pagemap-<image_pid>.img in `images_dir`: one hash per
// lazy page of that dump (lazy_ranges order), read from process `live_pid`'s memory (the dumped
// process itself, left stopped), or taken from `ahead` where it has them. IoError if a page
// cannot be read.
Result<LazyHashes> write_lazy_page_hashes(const std::string& images_dir, pid_t image_pid,
                                          pid_t live_pid, const PageHashTable* ahead = nullptr);

// Checks the lazy pages of `dumped_pid`'s dump in `images_dir` in process `live_pid`'s memory
// against page-hashes-<dumped_pid>; returns the pages that differ or could not be read. Pages
// `ahead` holds are taken from it (it must describe live_pid as it is now), the rest are read.
Result<std::vector<criu::VaddrRange>> compare_lazy_pages(const std::string& images_dir,
                                                         pid_t dumped_pid, pid_t live_pid,
                                                         const PageHashTable* ahead = nullptr);

}  // namespace relive::transfer
