// Arrivals: the migrations one relived is receiving right now, by workload name. It is the
// admission policy of the migration server (agent/migration_server.h): at most max_concurrent
// at once, never two of the same workload, and no more than a total (relived --once) in all.
// A refusal is a Status the source prints, never a wait in a queue.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "migrate/destination.h"
#include "relive/result.h"

namespace relive::agent {

class Arrivals {
 public:
  // `max_concurrent` >= 1; `total_limit` 0: no limit.
  Arrivals(int max_concurrent, int total_limit);
  Arrivals(const Arrivals&) = delete;
  Arrivals& operator=(const Arrivals&) = delete;

  // Thread-safe. A claim on one of the slots and on `name` (an empty name claims no name),
  // released when the claim is destroyed; the Arrivals must outlive every claim. Aborted with
  // "destination busy: N migrations in progress (max_concurrent N)" when all slots are taken,
  // with "workload 'X' is already arriving here" for a duplicate name, and "not accepting
  // more migrations" once total_limit claims were given.
  Result<std::unique_ptr<migrate::ArrivalClaim>> admit(const std::string& name);

  int in_progress() const;
  // Claims given so far, released or not.
  int admitted() const;
  // total_limit claims have been given: nothing more will be admitted.
  bool exhausted() const;

 private:
  class Claim;
  void release(const std::string& name);

  const int max_concurrent_;
  const int total_limit_;
  mutable std::mutex mu_;  // guards what follows
  int in_progress_ = 0;
  int admitted_ = 0;
  std::set<std::string> names_;
};

}  // namespace relive::agent
