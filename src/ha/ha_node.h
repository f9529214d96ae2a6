// HaNode: one side of a relived HA pair (`relived --ha-config FILE --name PEER`). Both sides run
// the same program; the etcd lease decides the roles.
//
//   starting  --lease acquired-->  primary: starts the workload (or restores the last epoch
//                                  after a failover), holds its output, and every epoch_ms
//                                  checkpoints it, ships the epoch to the backup and releases
//                                  the epoch's output once the backup acknowledged it
//   starting  --lease held-------> backup: applies epochs; when the primary falls silent for
//                                  failure_timeout_ms it tries to take the lease, and only with
//                                  it restores the last committed epoch and becomes primary
//   primary   --lease in doubt---> fenced: holds all output, kills its workload, becomes backup
//
// A primary without a backup serves unprotected (output passes at once) and raises an alert; it
// keeps dialling the backup and re-protects with a full epoch when one answers. Every node also
// answers `relive ha status` and (as primary) `relive ha switchover` on its listening address.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "drivers/criu/kdat_cache.h"
#include "ha/epoch_pipeline.h"
#include "ha/ha_config.h"
#include "ha/ha_metrics.h"
#include "ha/lease_keeper.h"
#include "ha/output_buffer.h"
#include "ha/protected_workload.h"
#include "ha/replica.h"
#include "ha/workload_network.h"
#include "relive/result.h"
#include "security/audit_log.h"
#include "security/channel.h"
#include "security/listener.h"
#include "security/replay_guard.h"
#include "security/request_gate.h"
#include "transfer/link.h"

namespace relive::ha {

enum class Role { kStarting, kPrimary, kBackup, kFenced };
const char* role_name(Role r);

struct HaNodeOptions {
  HaConfig config;
  std::string name;       // this peer, one of config.peers
  std::string state_dir;  // audit log, replica, scratch images
  bool insecure = false;  // plaintext replication (tests and trusted links only)
  // Where the node's metrics go (ha_metrics.h; not owned, must outlive the node); null: none.
  metrics::Registry* metrics = nullptr;
};

class HaNode {
 public:
  static Result<std::unique_ptr<HaNode>> create(HaNodeOptions options);
  ~HaNode();

  // Serves until *stop becomes true (then the workload is left as it is: a stopping primary
  // neither kills it nor hands it over).
  Status run(const std::atomic<bool>* stop);

  // The status `relive ha status` shows, as JSON.
  std::string status_json() const;
  // The state the metrics show (ha_metrics.h).
  HaSnapshot snapshot() const;

 private:
  explicit HaNode(HaNodeOptions o);
  const PeerConfig& self() const;
  const PeerConfig& other() const;
  security::ChannelOptions channel_options(const std::string& expected_peer) const;

  // --- listener side (ha_node.cc) ---
  void listen_loop(security::Listener* listener, const std::atomic<bool>* stop);
  void serve_connection(std::unique_ptr<security::Channel> channel);
  // One replication command from the primary; `link` is the connection's.
  Result<std::string> replicate(transfer::Link* link, const migration::Command& c);
  Result<std::string> switchover_request();

  // --- roles ---
  void start();         // kStarting
  void primary_tick();  // primary_role.cc
  void backup_tick();   // backup_role.cc
  // Backup: reads the fence key while the primary is suspected (sighting_), and takes the lease:
  // free, or held by a primary whose key has not moved for fence_ms (etcd_lease.h).
  void watch_fence();
  Result<Lease> try_lease();
  void fence(const std::string& why);
  Status become_primary_fresh();
  // When each phase of a takeover ended (logged as the failover timeline).
  struct TakeoverTimes {
    std::chrono::steady_clock::time_point heard, lease_won, network_up, output_ready, restored,
        serving;
  };
  Status take_over(TakeoverTimes* t);  // restore the committed epoch and serve
  Status begin_output();
  Status begin_serving(std::unique_ptr<ProtectedWorkload> workload);
  // The configured workload, of either kind, started afresh (`replica` null) or restored at
  // `replica`'s committed epoch: the one place that tells the kinds apart. Needs network_.
  Result<std::unique_ptr<ProtectedWorkload>> launch_workload(Replica* replica);
  void connect_backup();
  void epoch();
  void collect_commits();
  void lose_backup(const Status& why);
  void finish_switchover();
  void set_role(Role r);

  HaNodeOptions o_;
  std::unique_ptr<security::AuditLog> audit_;
  security::ReplayGuard guard_;
  std::unique_ptr<security::RequestGate> gate_;

  mutable std::mutex mu_;  // guards everything below that other threads read
  std::condition_variable cv_;
  Role role_ = Role::kStarting;
  std::vector<std::string> alerts_;
  std::chrono::steady_clock::time_point last_heard_{};  // backup: last message from the primary
  bool takeover_requested_ = false;                     // backup: planned switchover
  // Backup, main thread only: the fence key's mod_revision while the primary is suspected, and
  // when this node first saw it there (after the read that showed it).
  struct FenceSighting {
    int64_t revision = 0;
    std::chrono::steady_clock::time_point seen;
  };
  std::optional<FenceSighting> sighting_;
  bool joined_ = false;       // has served, or received an epoch: never cold-starts the workload
  int switchover_state_ = 0;  // primary: 0 none, 1 requested, 2 done, 3 failed
  std::string switchover_error_;

  // Backup state, guarded by replica_mu_ (a connection thread applies epochs, the main thread
  // restores from them).
  std::mutex replica_mu_;
  std::unique_ptr<Replica> replica_;

  // Primary state: main thread only, except the counters below (under mu_).
  std::unique_ptr<LeaseKeeper> lease_;
  std::unique_ptr<WorkloadNetwork> network_;
  // Backup, main thread only: the namespace and veth prepared once the primary is declared
  // silent (WorkloadNetwork::prepare), claimed by a takeover; dropped before any other network
  // is set up, since both would own the same names.
  std::unique_ptr<WorkloadNetwork> prepared_network_;
  // When the backup last declared the primary silent or was asked to take over (backup tick
  // thread only): a prepared network goes a whole lease after it.
  std::chrono::steady_clock::time_point last_alarm_{};
  std::unique_ptr<OutputBuffer> output_;
  // Process workloads: held while CRIU reads the sockets (epoch, restore). A VM's sockets are
  // in the guest, saved with its memory: no input is held for it.
  std::unique_ptr<OutputBuffer> input_;
  std::unique_ptr<ProtectedWorkload> workload_;
  // The link to the backup and its shipper (null: no backup); pipeline_event_ (under mu_) says
  // that it has news for collect_commits().
  std::unique_ptr<EpochPipeline> pipeline_;
  bool pipeline_event_ = false;
  size_t in_flight_ = 0;  // under mu_: epochs submitted, not yet collected as committed
  bool need_full_ = true;
  std::string full_reason_ = "protection starts";  // why need_full_ was set
  uint64_t next_epoch_ = 1;
  std::chrono::steady_clock::time_point next_epoch_at_{};
  std::chrono::steady_clock::time_point next_dial_at_{};
  // Since when every checkpoint has failed (epoch()); the epoch of no failure: none failing.
  std::chrono::steady_clock::time_point failing_since_{};

  struct EpochStat {
    std::chrono::steady_clock::time_point at;
    double frozen_ms;
    double epoch_ms;  // capture + ship + commit
    uint64_t bytes;
    uint64_t epoch = 0;
    std::string slow_path;    // why this epoch was a full one (the slow path), "" if it was not
    uint64_t disk_bytes = 0;  // a VM's disk blocks in it (before compression)
  };
  std::deque<EpochStat> recent_;  // under mu_
  uint64_t committed_ = 0;        // under mu_: last epoch the backup acknowledged / applied
  std::chrono::steady_clock::time_point last_commit_{};
  uint64_t epochs_total_ = 0;
  uint64_t fast_epochs_total_ = 0;  // epochs that were fast captures (fast_capture.h)
  bool protected_ = false;          // under mu_: a backup has every epoch up to committed_
  pid_t workload_pid_ = 0;          // under mu_

  std::vector<std::thread> connections_;
  std::unique_ptr<criu::KdatCache> kdat_;
  // Last: its scrape callbacks read the members above, so it goes first.
  HaMetrics metrics_;
};

}  // namespace relive::ha
