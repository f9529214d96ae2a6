// Pre-copy's phases, shared by process trees (precopy.cc) and runc containers (runc_source.cc):
// arm relive's dirty tracker in every process, ship memory in rounds while they run, stop them
// and take the last dirty set, and after CRIU's dump ship only the dump's pages the destination
// does not hold unchanged. Pages travel under the PID the dump names the process by (its PID in
// its own namespace for a container), so the destination can match them with the pagemaps.
#pragma once

#include <sys/types.h>

#include <map>
#include <vector>

#include "dirty/dirty_tracker.h"
#include "migrate/source.h"

namespace relive::migrate {

class PrecopyRounds {
 public:
  // `dump_pid_of` maps each process (its PID here) to the PID its dump will carry.
  static Result<PrecopyRounds> arm(Source* s, const std::map<pid_t, pid_t>& dump_pid_of);

  // Rounds while the workload runs. True when the last one was small enough to freeze; false
  // when rounds stopped shrinking, or rounds or time ran out.
  Result<bool> iterate();
  // Removes the trackers from running processes (switching strategy).
  Status disarm();
  // The processes are stopped (SIGSTOP): takes the last dirty set and removes the trackers.
  Status finish_stopped();
  // After the dump: ships the pages of the dump that are not tracked-and-clean.
  Result<uint64_t> ship_final_delta();

 private:
  using Ranges = std::map<pid_t, std::vector<dirty::PageRange>>;
  PrecopyRounds(Source* s, std::map<pid_t, pid_t> dump_pid_of)
      : s_(s), dump_pid_of_(std::move(dump_pid_of)) {}
  Result<uint64_t> send_live_round(uint32_t round, const Ranges& ranges);
  Result<Ranges> collect_all();

  Source* s_;
  std::map<pid_t, pid_t> dump_pid_of_;
  std::vector<dirty::DirtyTracker> trackers_;
  Ranges tracked_;     // at the freeze
  Ranges last_dirty_;  // since the last round, at the freeze
};

// SIGSTOPs every process and waits until all are stopped.
Status stop_processes(const std::vector<pid_t>& pids);

}  // namespace relive::migrate
