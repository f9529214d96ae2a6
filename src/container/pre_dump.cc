#include "container/pre_dump.h"

#include <chrono>
#include <string_view>

#include "common/clock.h"
#include "common/process_tree.h"
#include "dirty/dirty_tracker.h"
#include "dirty/page_reader.h"

namespace relive::container {
namespace {

using dirty::DirtyTracker;
using dirty::PageRange;

bool gone(const Status& s) { return s.code() == Status::Code::kNotFound; }

Result<std::vector<DirtyTracker>> arm_all(pid_t root) {
  RELIVE_ASSIGN_OR_RETURN(std::vector<pid_t> tree, process_tree(root));
  std::vector<DirtyTracker> out;
  for (pid_t p : tree) {
    Result<DirtyTracker> t = DirtyTracker::arm(p);
    if (!t.ok() && gone(t.status())) continue;  // a short-lived child (a shell's `sleep`)
    if (!t.ok()) return t.status().with_context("pre-dump: tracking pid " + std::to_string(p));
    out.push_back(std::move(*t));
  }
  return out;
}

// One round in one process: every tracked page in round 0, else those written since the last
// round. The copy is the read itself (process_vm_readv into relive's buffer); nothing keeps it.
Result<uint64_t> copy_round(DirtyTracker& t, bool first) {
  std::vector<PageRange> ranges;
  if (first) {
    ranges = t.tracked();
  } else {
    Result<std::vector<PageRange>> d = t.collect();
    if (!d.ok()) return gone(d.status()) ? Result<uint64_t>(0) : Result<uint64_t>(d.status());
    ranges = std::move(*d);
  }
  auto drop = [](uint64_t, std::string_view) { return Status::Ok(); };
  Result<dirty::ReadReport> r = dirty::read_pages(t.pid(), ranges, drop);
  if (!r.ok()) return gone(r.status()) ? Result<uint64_t>(0) : Result<uint64_t>(r.status());
  return r->pages_read;
}

}  // namespace

Result<PreDumpReport> pre_dump(pid_t root, int rounds) {
  PreDumpReport report;
  if (rounds <= 0) return report;
  auto start = std::chrono::steady_clock::now();
  // On any return the trackers' destructors remove them from the tree.
  RELIVE_ASSIGN_OR_RETURN(std::vector<DirtyTracker> trackers, arm_all(root));
  for (int round = 0; round < rounds; ++round) {
    uint64_t pages = 0;
    for (DirtyTracker& t : trackers) {
      RELIVE_ASSIGN_OR_RETURN(uint64_t n, copy_round(t, round == 0));
      pages += n;
    }
    report.round_pages.push_back(pages);
  }
  for (DirtyTracker& t : trackers) {
    Result<std::vector<PageRange>> d = t.collect();
    if (d.ok()) report.final_dirty_pages += dirty::page_count(*d);
    RELIVE_RETURN_IF_ERROR(t.disarm());
  }
  report.ms = ms_since(start);
  return report;
}

}  // namespace relive::container
