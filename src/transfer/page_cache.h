// The destination's copy of a pre-copied workload's memory: pages received in rounds while the
// source runs, kept per process in a sparse file indexed by virtual address (later rounds
// overwrite earlier ones), with a record of which pages arrived. At the switch-over it turns
// the final dump's pagemaps into pages images, so the dump itself ships no memory. A page the
// pagemap lists but no round carried is an error, never a zero page.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/scoped_fd.h"
#include "relive/result.h"
#include "transfer/bulk.h"
#include "wire/migration_types.h"

namespace relive::transfer {

// Sets of page-aligned address ranges, merged.
class RangeSet {
 public:
  void add(uint64_t start, uint64_t len);
  bool covers(uint64_t start, uint64_t len) const;
  uint64_t bytes() const;

 private:
  std::map<uint64_t, uint64_t> ranges_;  // start -> end
};

// Receives `pages` (whole pages) of process `pid` at `vaddr`; valid only during the call.
using PageRunSink = std::function<Status(pid_t pid, uint64_t vaddr, std::string_view pages)>;

// Reads the bulk segments of one page round from `channel` up to its end event (pid 0, 0 pages),
// passing each run to `sink`. Corruption on a malformed event.
Status read_page_round(security::Channel* channel, const PageRunSink& sink);

class PageCache {
 public:
  static Result<PageCache> create(const std::string& dir);

  // Reads the bulk segments of one round from `channel`, up to its end event (pid 0, 0 pages).
  Status receive(security::Channel* channel, const migration::PageRound& round);
  // Stores pages (a whole number) of `pid` at `vaddr`, replacing what was there.
  Status put(pid_t pid, uint64_t vaddr, std::string_view pages);
  // Writes pages-<id>.img for every pagemap-<pid>.img in `images_dir` from the cached pages.
  Status rebuild_pages_images(const std::string& images_dir);
  // Copies one page of `pid` at `vaddr` into `out` (4096 bytes); NotFound if never received.
  Status read_page(pid_t pid, uint64_t vaddr, char* out);
  // Copies `len` bytes (whole pages) of `pid` from `vaddr` on; NotFound if any was never received.
  Status read_run(pid_t pid, uint64_t vaddr, uint64_t len, char* out);

  uint64_t pages_received() const { return pages_received_; }

 private:
  explicit PageCache(std::string dir) : dir_(std::move(dir)) {}
  Result<int> file_for(pid_t pid);
  // Where the page at `vaddr` of `pid` lives in its file: each 1 GiB region of the address
  // space that holds pages gets its own slot, so the sparse file stays far below file-system
  // size limits (user addresses reach 2^47).
  off_t offset_of(pid_t pid, uint64_t vaddr);

  std::string dir_;
  std::map<pid_t, ScopedFd> files_;
  std::map<pid_t, RangeSet> have_;
  std::map<pid_t, std::map<uint64_t, uint64_t>> slots_;  // region -> slot
  uint64_t pages_received_ = 0;
};

// The sending side of a page round: pages as events of at most 256 pages, then the end event.
class PageSender {
 public:
  explicit PageSender(security::Channel* channel);
  // `bytes` is a whole number of pages starting at `vaddr`.
  Status add(pid_t pid, uint64_t vaddr, std::string_view bytes);
  Status finish();
  uint64_t pages() const { return pages_; }
  uint64_t wire_bytes() const { return out_.wire_bytes(); }

 private:
  BulkSender out_;
  uint64_t pages_ = 0;
};

}  // namespace relive::transfer
