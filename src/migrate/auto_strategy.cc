#include "migrate/auto_strategy.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/process_tree.h"
#include "dirty/dirty_tracker.h"

namespace relive::migrate {
namespace {

using migration::Strategy;

// Resident anonymous memory of the tree, in bytes (what a dump has to write).
uint64_t resident_anon_bytes(const std::vector<pid_t>& pids) {
  uint64_t kb = 0;
  for (pid_t p : pids) {
    std::ifstream in("/proc/" + std::to_string(p) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("RssAnon:", 0) == 0) kb += std::stoull(line.substr(8));
    }
  }
  return kb * 1024;
}

size_t threads_of(pid_t pid) {
  std::error_code ec;
  auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
  return ec ? 0 : static_cast<size_t>(std::distance(begin(it), end(it)));
}

// Pages the tree dirties per second, measured with relive's own tracker over `window`.
Result<double> dirty_rate(const std::vector<pid_t>& pids, std::chrono::milliseconds window) {
  std::vector<dirty::DirtyTracker> trackers;
  for (pid_t p : pids) {
    RELIVE_ASSIGN_OR_RETURN(dirty::DirtyTracker t, dirty::DirtyTracker::arm(p));
    trackers.push_back(std::move(t));
  }
  for (auto& t : trackers) RELIVE_RETURN_IF_ERROR(t.collect().status());
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(window);
  uint64_t pages = 0;
  for (auto& t : trackers) {
    RELIVE_ASSIGN_OR_RETURN(auto ranges, t.collect());
    pages += dirty::page_count(ranges);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto& t : trackers) RELIVE_RETURN_IF_ERROR(t.disarm());
  return pages / secs;
}

}  // namespace

// The policy, from what was measured:
//  - little memory: stop-copy (any other freeze is as long, and nothing runs twice);
//  - a single process that dirties memory faster than pre-copy can chase (more than
//    kChasePages per second, i.e. tens of MB/s): CR/TR, whose rounds carry its input, not its
//    memory (and which leaves for post-copy by itself when it cannot win: crtr.cc);
//  - otherwise pre-copy when it converges (few dirty pages), post-copy when it would not.
Result<StrategyChoice> choose_strategy(const MigrateOptions& o) {
  RELIVE_ASSIGN_OR_RETURN(auto tree, process_tree(o.pid));
  uint64_t anon = resident_anon_bytes(tree);
  StrategyChoice c;
  constexpr uint64_t kSmall = 32ull << 20;
  if (anon < kSmall) {
    c.strategy = Strategy::kStopCopy;
    c.reason =
        fmt::format("{} MiB resident: a plain dump is as short as any other freeze", anon >> 20);
    return c;
  }
  RELIVE_ASSIGN_OR_RETURN(double rate, dirty_rate(tree, std::chrono::milliseconds(300)));
  constexpr double kChasePages = 4096;  // 16 MiB/s
  bool one_process = tree.size() == 1;
  std::string facts = fmt::format("{} MiB resident, {} threads, {:.0f} dirty pages/s", anon >> 20,
                                  threads_of(o.pid), rate);
  if (rate > kChasePages && one_process) {
    c.strategy = Strategy::kCrtr;
    c.reason = facts + ": pre-copy would chase the writes; CR/TR ships the input instead";
  } else if (rate > kChasePages) {
    c.strategy = Strategy::kPostcopy;
    c.reason = facts + ": pre-copy would not converge and CR/TR moves one process; post-copy";
  } else {
    c.strategy = Strategy::kPrecopy;
    c.reason = facts + ": pre-copy converges";
  }
  return c;
}

}  // namespace relive::migrate
