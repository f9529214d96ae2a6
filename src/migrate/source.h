// The source's half of a migration, shared by every strategy: the link to the destination,
// the workload's fence (its traffic lock and service address), the switch-over, and the
// rollback that leaves the source exactly as it was when anything fails before the switch-over.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/work_dir.h"
#include "container/runc.h"
#include "drivers/criu/criu.h"
#include "net/service_address.h"
#include "relive/migrate.h"
#include "transfer/link.h"
#include "transfer/rate_limit.h"
#include "wire/migration_types.h"

namespace relive::migrate {

using Clock = std::chrono::steady_clock;

class Source {
 public:
  explicit Source(const MigrateOptions& options)
      : o_(options),
        start_(Clock::now()),
        limiter_(std::make_shared<transfer::RateLimiter>(options.max_bandwidth)) {}
  ~Source() { rollback(); }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  const MigrateOptions& options() const { return o_; }
  transfer::Link& link() { return *link_; }
  // The migration's bandwidth budget (options().max_bandwidth; unlimited at 0): the link's
  // channel sends through it, and so must any other stream to the destination.
  const std::shared_ptr<transfer::RateLimiter>& limiter() const { return limiter_; }
  MigrateReport& report() { return report_; }
  const std::string& images_dir() const { return images_; }
  const std::vector<pid_t>& tree() const { return tree_; }
  // The work dir that holds images_dir(); strategies keep their other files there.
  std::string work_path() const { return work_->path(); }

  // runc containers (options().runc_name): runc, and the container as open() found it.
  bool is_runc() const { return runc_.has_value(); }
  const container::Runc& runc() const { return *runc_; }
  const container::RuncState& runc_state() const { return runc_state_; }
  // The container is paused (frozen) by relive: the rollback resumes it.
  void container_paused() { runc_paused_ = true; }

  // Connects, authenticates, and announces the migration (migrate.begin).
  Status open(migration::Strategy strategy);
  // Emits a progress line through options().progress.
  void progress(const std::string& line) const;

  // The freeze: from here the workload's downtime counts. Locks the service address's
  // traffic first, so that nothing is acknowledged that the destination would not have.
  Status freeze_begins();
  // The workload is frozen and dumped: give its address up for the destination to take.
  Status release_address();
  // CRIU left the tree stopped (not killed): the rollback must resume it.
  void tree_left_stopped() { tree_stopped_ = true; }
  // The tree belongs to a CRIU process that resumes it on failure (post-copy).
  // It also ends the tree itself after the switch-over; call end_source() once it has.
  void tree_owned_by_criu() {
    tree_stopped_ = false;
    criu_ends_tree_ = true;
  }

  // Sends `restore`, then commits and ends the source once the destination runs the workload.
  // After migrate.commit has been sent and its answer lost, the source is neither resumed nor
  // killed: it stays frozen and the error says so (never two primaries, nothing lost).
  Status switch_over(const migration::Restore& restore);

  void add_bytes(const std::string& phase, uint64_t n);
  // auto: the chosen strategy stopped converging; the rest of the migration uses `strategy`.
  void switch_strategy(const std::string& strategy, const std::string& why);
  // Kills what is left of the tree (a runc container: kills and deletes it), destroys its
  // sockets, lifts the traffic lock.
  Status end_source();
  // Fills timings; call after a successful switch_over.
  MigrateReport finish();

 private:
  void rollback();
  Status open_runc();

  const MigrateOptions& o_;
  Clock::time_point start_, freeze_{};
  std::shared_ptr<transfer::RateLimiter> limiter_;
  std::unique_ptr<transfer::Link> link_;
  std::optional<WorkDir> work_;
  std::string images_;
  std::vector<pid_t> tree_;
  std::optional<net::ServiceAddress> svc_;
  std::string svc_dev_;
  std::optional<net::TrafficLock> lock_;
  bool address_released_ = false;
  bool tree_stopped_ = false;
  bool criu_ends_tree_ = false;
  std::optional<container::Runc> runc_;
  container::RuncState runc_state_;
  bool runc_paused_ = false;
  bool done_ = false;     // switched over (or must not be touched)
  bool aborted_ = false;  // told the destination
  MigrateReport report_;
};

// The strategies. Each returns with the switch-over done, or fails with the source resumed.
Status run_stop_copy(Source* s);
Status run_postcopy(Source* s);
Status run_precopy(Source* s);
Status run_crtr(Source* s);
// runc containers: `runc checkpoint` (which drives CRIU) instead of CRIU directly.
Status run_runc_stop_copy(Source* s);
Status run_runc_postcopy(Source* s);
Status run_runc_precopy(Source* s);

// A free TCP port for CRIU's page server (bound and released: CRIU binds it right after).
Result<uint16_t> free_port();

// CRIU dump options every strategy shares: the tree, the images dir, TCP, and no CRIU network
// lock (relive's TrafficLock is the lock, so that a rollback can lift it).
Result<criu::DumpOptions> base_dump_options(const Source& s);
// Sends the images CRIU wrote (except those `skip` names) and counts their bytes.
Status ship_images(Source* s, const std::function<bool(const std::string&)>& skip = {});
// The images CRIU wrote, relative to the images dir (logs and stats excluded).
Result<std::vector<std::string>> image_files(const std::string& images_dir);

}  // namespace relive::migrate
