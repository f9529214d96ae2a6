#include "migrate/auto_strategy.h"

#include <fstream>
#include <string>

#include <fmt/format.h>

#include "migrate/process_tree.h"

namespace relive::migrate {
namespace {

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

}  // namespace

Result<StrategyChoice> choose_strategy(const MigrateOptions& o) {
  RELIVE_ASSIGN_OR_RETURN(auto tree, process_tree(o.pid));
  uint64_t anon = resident_anon_bytes(tree);
  StrategyChoice c;
  constexpr uint64_t kSmall = 32ull << 20;
  if (anon < kSmall) {
    c.strategy = migration::Strategy::kStopCopy;
    c.reason = fmt::format("{} MiB resident: a plain dump is as short as any other freeze",
                           anon >> 20);
  } else {
    c.strategy = migration::Strategy::kPostcopy;
    c.reason = fmt::format("{} MiB resident: post-copy keeps the freeze independent of memory size",
                           anon >> 20);
  }
  return c;
}

}  // namespace relive::migrate
