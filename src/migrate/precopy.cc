// Pre-copy: ship the memory while the workload runs, then ship only what it dirtied since, in
// rounds, until a round is small (or rounds stop shrinking, or a bound is hit); then freeze,
// dump, and ship the last dirty pages plus the non-memory images. The destination rebuilds the
// dump's pages images from its copy. CRIU's own pre-dump needs soft-dirty bits this kernel
// lacks, so the dirty pages come from relive's tracker (dirty/dirty_tracker.h).
#include <signal.h>

#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "common/file_util.h"
#include "dirty/dirty_tracker.h"
#include "dirty/page_reader.h"
#include "drivers/criu/page_image.h"
#include "migrate/file_transfer.h"
#include "migrate/page_cache.h"
#include "migrate/process_tree.h"
#include "migrate/source.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;
using dirty::DirtyTracker;
using dirty::PageRange;

using Dirty = std::map<pid_t, std::vector<PageRange>>;

// Sends `ranges` of each process, read live, as one page round; returns its page count.
Result<uint64_t> send_live_round(Source* s, uint32_t round, const Dirty& ranges) {
  uint64_t pages = 0;
  for (const auto& [pid, r] : ranges) pages += dirty::page_count(r);
  RELIVE_RETURN_IF_ERROR(s->link().send(m::PageRound{round, pages}));
  PageSender out(&s->link().channel());
  for (const auto& [pid, r] : ranges) {
    auto sink = [&, pid = pid](uint64_t vaddr, std::string_view bytes) {
      return out.add(pid, vaddr, bytes);
    };
    RELIVE_RETURN_IF_ERROR(dirty::read_pages(pid, r, sink).status());
  }
  RELIVE_RETURN_IF_ERROR(out.finish());
  RELIVE_RETURN_IF_ERROR(s->link().wait_ack().status());
  s->add_bytes("pages", out.wire_bytes());
  return pages;
}

Result<Dirty> collect_all(std::vector<DirtyTracker>* trackers) {
  Dirty d;
  for (DirtyTracker& t : *trackers) {
    RELIVE_ASSIGN_OR_RETURN(auto ranges, t.collect());
    d[t.pid()] = std::move(ranges);
  }
  return d;
}

bool all_stopped(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) {
    std::ifstream in("/proc/" + std::to_string(p) + "/stat");
    std::string line;
    std::getline(in, line);
    size_t close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) continue;  // gone
    char state = line[close + 2];
    if (state != 'T' && state != 't') return false;
  }
  return true;
}

// Stops every process of the tree (SIGSTOP) and waits until all are stopped.
Status stop_tree(const std::vector<pid_t>& pids) {
  signal_all(pids, SIGSTOP);
  for (int i = 0; i < 2000 && !all_stopped(pids); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return all_stopped(pids) ? Status::Ok() : Status::IoError("the tree did not stop");
}

// The pages of the dump the destination does not hold as they are now: everything present
// minus what was tracked, sent, and not written since.
Result<uint64_t> send_final_delta(Source* s, uint32_t round, const Dirty& tracked_by_pid,
                                  const Dirty& last_dirty) {
  RELIVE_RETURN_IF_ERROR(s->link().send(m::PageRound{round, 0}));
  PageSender out(&s->link().channel());
  for (const auto& [pid, tracked_ranges] : tracked_by_pid) {
    RELIVE_ASSIGN_OR_RETURN(std::string pm, read_file(fmt::format("{}/pagemap-{}.img",
                                                                  s->images_dir(), pid)));
    RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, criu::decode_pagemap_image(pm));
    std::vector<criu::VaddrRange> tracked, dirty;
    for (const PageRange& r : tracked_ranges) tracked.push_back({r.start, r.pages});
    auto d = last_dirty.find(pid);
    if (d != last_dirty.end())
      for (const PageRange& r : d->second) dirty.push_back({r.start, r.pages});
    auto clean = criu::subtract(tracked, dirty);
    auto present = criu::present_ranges(image);
    auto ship = criu::subtract(present, clean);
    auto count = [](const std::vector<criu::VaddrRange>& v) {
      uint64_t n = 0;
      for (const auto& r : v) n += r.pages;
      return n;
    };
    s->progress(fmt::format("phase=final pid={} present={} tracked={} dirty={} shipped={}", pid,
                            count(present), count(tracked), count(dirty), count(ship)));
    auto sink = [&, pid = pid](uint64_t vaddr, std::string_view bytes) {
      return out.add(pid, vaddr, bytes);
    };
    RELIVE_RETURN_IF_ERROR(criu::extract_pages(s->images_dir(), pid, ship, sink));
  }
  RELIVE_RETURN_IF_ERROR(out.finish());
  RELIVE_RETURN_IF_ERROR(s->link().wait_ack().status());
  s->add_bytes("final_pages", out.wire_bytes());
  return out.pages();
}

// Rounds while the workload runs. Returns whether the last round was small enough to freeze
// (false: rounds stopped shrinking, or rounds or time ran out).
Result<bool> iterate(Source* s, std::vector<DirtyTracker>* trackers) {
  const MigrateOptions& o = s->options();
  Dirty all;
  for (const DirtyTracker& t : *trackers) all[t.pid()] = t.tracked();
  auto start = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(uint64_t pages, send_live_round(s, 0, all));
  s->progress(fmt::format("phase=precopy round=0 pages={} bytes={}", pages, s->report().bytes_total));
  uint64_t best = UINT64_MAX;
  int stalled = 0;
  for (int round = 1; round < o.max_rounds; ++round) {
    RELIVE_ASSIGN_OR_RETURN(Dirty d, collect_all(trackers));
    uint64_t n = 0;
    for (const auto& [pid, r] : d) n += dirty::page_count(r);
    s->report().rounds = round + 1;
    RELIVE_ASSIGN_OR_RETURN(pages, send_live_round(s, static_cast<uint32_t>(round), d));
    s->progress(fmt::format("phase=precopy round={} pages={} bytes={}", round, pages,
                            s->report().bytes_total));
    if (n <= o.dirty_threshold_pages) return true;
    stalled = n < best ? 0 : stalled + 1;
    best = std::min(best, n);
    if (stalled >= 3) {
      s->progress("precopy is not converging (dirty pages stopped shrinking)");
      return false;
    }
    if (Clock::now() - start > o.max_time) return false;
  }
  return false;
}

}  // namespace

Status run_precopy(Source* s) {
  std::vector<DirtyTracker> trackers;
  for (pid_t p : s->tree()) {
    RELIVE_ASSIGN_OR_RETURN(DirtyTracker t, DirtyTracker::arm(p));
    trackers.push_back(std::move(t));
  }
  RELIVE_ASSIGN_OR_RETURN(bool converged, iterate(s, &trackers));
  if (!converged && s->options().strategy == "auto") {
    for (DirtyTracker& t : trackers) RELIVE_RETURN_IF_ERROR(t.disarm());
    s->switch_strategy("postcopy", "pre-copy stopped converging");
    return run_postcopy(s);
  }
  RELIVE_RETURN_IF_ERROR(s->freeze_begins());
  RELIVE_RETURN_IF_ERROR(stop_tree(s->tree()));
  s->tree_left_stopped();
  RELIVE_ASSIGN_OR_RETURN(Dirty last, collect_all(&trackers));
  Dirty tracked;
  for (DirtyTracker& t : trackers) {
    tracked[t.pid()] = t.tracked();  // disarm() forgets them
    RELIVE_RETURN_IF_ERROR(t.disarm());
  }
  RELIVE_ASSIGN_OR_RETURN(criu::DumpOptions d, base_dump_options(*s));
  d.leave_stopped = true;
  s->progress("phase=dump");
  RELIVE_RETURN_IF_ERROR(criu::dump(d).status());
  RELIVE_RETURN_IF_ERROR(s->release_address());
  RELIVE_ASSIGN_OR_RETURN(uint64_t delta, send_final_delta(s, static_cast<uint32_t>(s->report().rounds), tracked, last));
  RELIVE_ASSIGN_OR_RETURN(auto files, image_files(s->images_dir()));
  std::erase_if(files, [](const std::string& f) { return f.starts_with("pages-"); });
  s->progress(fmt::format("phase=final pages={} files={}", delta, files.size()));
  RELIVE_ASSIGN_OR_RETURN(uint64_t bytes, send_files(&s->link(), "images", s->images_dir(), files));
  s->add_bytes("images", bytes);
  migration::Restore r;
  r.pages_from_cache = true;
  return s->switch_over(r);
}

}  // namespace relive::migrate
