// Pre-copy of a process tree: rounds of memory while it runs (precopy_rounds.h), then a freeze,
// CRIU's dump, the last dirty pages and the non-memory images. The destination rebuilds the
// dump's pages images from its copy. CRIU's own pre-dump needs soft-dirty bits this kernel lacks,
// so the dirty pages come from relive's tracker (dirty/dirty_tracker.h).
#include <fmt/format.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "common/file_util.h"
#include "common/process_tree.h"
#include "dirty/page_reader.h"
#include "drivers/criu/page_image.h"
#include "migrate/precopy_rounds.h"
#include "migrate/source.h"
#include "transfer/page_cache.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;
using dirty::DirtyTracker;
using dirty::PageRange;

bool all_stopped(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) {
    char state = task_state(p);
    if (state == '\0') continue;  // gone
    if (state != 'T' && state != 't') return false;
  }
  return true;
}

uint64_t count(const std::vector<criu::VaddrRange>& v) {
  uint64_t n = 0;
  for (const auto& r : v) n += r.pages;
  return n;
}

}  // namespace

Status stop_processes(const std::vector<pid_t>& pids) {
  signal_all(pids, SIGSTOP);
  for (int i = 0; i < 2000 && !all_stopped(pids); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return all_stopped(pids) ? Status::Ok() : Status::IoError("the tree did not stop");
}

Result<PrecopyRounds> PrecopyRounds::arm(Source* s, const std::map<pid_t, pid_t>& dump_pid_of) {
  PrecopyRounds r(s, dump_pid_of);
  for (const auto& [pid, key] : dump_pid_of) {
    Result<DirtyTracker> t = DirtyTracker::arm(pid);
    // A short-lived process (a shell's `sleep`) may be gone already: nothing to track. Processes
    // that are not tracked have all their pages shipped at the end (ship_final_delta).
    if (!t.ok() && t.status().code() == Status::Code::kNotFound) continue;
    if (!t.ok()) return t.status();
    r.trackers_.push_back(std::move(*t));
  }
  return r;
}

// Sends `ranges` of each process, read live, as one page round; returns its page count.
Result<uint64_t> PrecopyRounds::send_live_round(uint32_t round, const Ranges& ranges) {
  uint64_t pages = 0;
  for (const auto& [pid, r] : ranges) pages += dirty::page_count(r);
  RELIVE_RETURN_IF_ERROR(s_->link().send(m::PageRound{round, pages}));
  transfer::PageSender out(&s_->link().channel());
  for (const auto& [pid, r] : ranges) {
    auto sink = [&, key = dump_pid_of_.at(pid)](uint64_t vaddr, std::string_view bytes) {
      return out.add(key, vaddr, bytes);
    };
    RELIVE_RETURN_IF_ERROR(dirty::read_pages(pid, r, sink).status());
  }
  RELIVE_RETURN_IF_ERROR(out.finish());
  RELIVE_RETURN_IF_ERROR(s_->link().wait_ack().status());
  // The first round is the full copy; what follows it is what the workload dirtied meanwhile.
  s_->add_bytes(round == 0 ? "first_copy" : "pages", out.wire_bytes());
  return pages;
}

Result<PrecopyRounds::Ranges> PrecopyRounds::collect_all() {
  Ranges d;
  for (DirtyTracker& t : trackers_) {
    RELIVE_ASSIGN_OR_RETURN(auto ranges, t.collect());
    d[t.pid()] = std::move(ranges);
  }
  return d;
}

Result<bool> PrecopyRounds::iterate() {
  const MigrateOptions& o = s_->options();
  Ranges all;
  for (const DirtyTracker& t : trackers_) all[t.pid()] = t.tracked();
  auto start = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(uint64_t pages, send_live_round(0, all));
  s_->progress(
      fmt::format("phase=precopy round=0 pages={} bytes={}", pages, s_->report().bytes_total));
  uint64_t best = UINT64_MAX;
  int stalled = 0;
  for (int round = 1; round < o.max_rounds; ++round) {
    RELIVE_ASSIGN_OR_RETURN(Ranges d, collect_all());
    uint64_t n = 0;
    for (const auto& [pid, r] : d) n += dirty::page_count(r);
    s_->report().rounds = round + 1;
    RELIVE_ASSIGN_OR_RETURN(pages, send_live_round(static_cast<uint32_t>(round), d));
    s_->progress(fmt::format("phase=precopy round={} pages={} bytes={}", round, pages,
                             s_->report().bytes_total));
    if (n <= o.dirty_threshold_pages) return true;
    stalled = n < best ? 0 : stalled + 1;
    best = std::min(best, n);
    if (stalled >= 3) {
      s_->progress("precopy is not converging (dirty pages stopped shrinking)");
      return false;
    }
    if (Clock::now() - start > o.max_time) return false;
  }
  return false;
}

Status PrecopyRounds::disarm() {
  for (DirtyTracker& t : trackers_) RELIVE_RETURN_IF_ERROR(t.disarm());
  return Status::Ok();
}

Status PrecopyRounds::finish_stopped() {
  RELIVE_ASSIGN_OR_RETURN(last_dirty_, collect_all());
  for (DirtyTracker& t : trackers_) {
    tracked_[t.pid()] = t.tracked();  // disarm() forgets them
    RELIVE_RETURN_IF_ERROR(t.disarm());
  }
  return Status::Ok();
}

// The pages of the dump the destination does not hold as they are now: everything present
// minus what was tracked, sent, and not written since.
Result<uint64_t> PrecopyRounds::ship_final_delta() {
  RELIVE_RETURN_IF_ERROR(
      s_->link().send(m::PageRound{static_cast<uint32_t>(s_->report().rounds), 0}));
  transfer::PageSender out(&s_->link().channel());
  std::map<pid_t, pid_t> pid_of_dump;  // dump pid -> pid here, for the tracked processes
  for (const auto& [pid, ranges] : tracked_) pid_of_dump[dump_pid_of_.at(pid)] = pid;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(s_->images_dir(), ec)) {
    std::string name = e.path().filename().string();
    if (!name.starts_with("pagemap-") || name.starts_with("pagemap-shmem")) continue;
    pid_t key = std::atoi(name.c_str() + 8);
    RELIVE_ASSIGN_OR_RETURN(std::string pm, read_file(e.path().string()));
    RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage image, criu::decode_pagemap_image(pm));
    std::vector<criu::VaddrRange> tracked, dirty;
    if (auto it = pid_of_dump.find(key); it != pid_of_dump.end()) {
      for (const PageRange& r : tracked_[it->second]) tracked.push_back({r.start, r.pages});
      for (const PageRange& r : last_dirty_[it->second]) dirty.push_back({r.start, r.pages});
    }
    auto present = criu::present_ranges(image);
    auto ship = criu::subtract(present, criu::subtract(tracked, dirty));
    s_->progress(fmt::format("phase=final pid={} present={} tracked={} dirty={} shipped={}", key,
                             count(present), count(tracked), count(dirty), count(ship)));
    auto sink = [&](uint64_t vaddr, std::string_view bytes) { return out.add(key, vaddr, bytes); };
    RELIVE_RETURN_IF_ERROR(criu::extract_pages(s_->images_dir(), key, ship, sink));
  }
  if (ec) return Status::IoError("list " + s_->images_dir() + ": " + ec.message());
  RELIVE_RETURN_IF_ERROR(out.finish());
  RELIVE_RETURN_IF_ERROR(s_->link().wait_ack().status());
  s_->add_bytes("final_pages", out.wire_bytes());
  return out.pages();
}

Status run_precopy(Source* s) {
  std::map<pid_t, pid_t> same;
  for (pid_t p : s->tree()) same[p] = p;
  RELIVE_ASSIGN_OR_RETURN(PrecopyRounds rounds, PrecopyRounds::arm(s, same));
  RELIVE_ASSIGN_OR_RETURN(bool converged, rounds.iterate());
  if (!converged && s->options().strategy == "auto") {
    RELIVE_RETURN_IF_ERROR(rounds.disarm());
    s->switch_strategy("postcopy", "pre-copy stopped converging");
    return run_postcopy(s);
  }
  // Before the freeze: finding CRIU runs `criu --version`, which would add to the downtime.
  RELIVE_ASSIGN_OR_RETURN(criu::DumpOptions d, base_dump_options(*s));
  d.leave_stopped = true;
  RELIVE_RETURN_IF_ERROR(s->freeze_begins());
  RELIVE_RETURN_IF_ERROR(stop_processes(s->tree()));
  s->tree_left_stopped();
  RELIVE_RETURN_IF_ERROR(rounds.finish_stopped());
  s->progress("phase=dump");
  RELIVE_RETURN_IF_ERROR(criu::dump(d).status());
  RELIVE_RETURN_IF_ERROR(s->release_address());
  RELIVE_ASSIGN_OR_RETURN(uint64_t delta, rounds.ship_final_delta());
  s->progress(fmt::format("phase=final pages={}", delta));
  RELIVE_RETURN_IF_ERROR(
      ship_images(s, [](const std::string& f) { return f.starts_with("pages-"); }));
  migration::Restore r;
  r.pages_from_cache = true;
  return s->switch_over(r);
}

}  // namespace relive::migrate
