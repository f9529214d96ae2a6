// HaNode as primary: the epoch loop, the link to the backup, unprotected mode and the planned
// switchover (ha_node.h describes the roles).
#include <fmt/format.h>

#include <thread>

#include "common/file_util.h"
#include "common/logging.h"
#include "ha/dir_sync.h"
#include "ha/epoch_pipeline.h"
#include "ha/ha_node.h"
#include "security/listener.h"
#include "security/replay_guard.h"

namespace relive::ha {
namespace m = relive::migration;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {
double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }
}  // namespace

Status HaNode::become_primary_fresh() {
  const WorkloadConfig& w = o_.config.workload;
  prepared_network_.reset();
  RELIVE_ASSIGN_OR_RETURN(WorkloadNetwork net, WorkloadNetwork::up(w, o_.name));
  network_ = std::make_unique<WorkloadNetwork>(std::move(net));
  RELIVE_RETURN_IF_ERROR(begin_output());
  RELIVE_ASSIGN_OR_RETURN(std::unique_ptr<ProtectedWorkload> started, launch_workload(nullptr));
  RELIVE_LOG_INFO("started the workload: pid {}", started->pid());
  return begin_serving(std::move(started));
}

Status HaNode::begin_output() {
  OutputBuffer::Options bo;
  bo.netns = network_->netns();
  bo.source = o_.config.workload.service_address;
  bo.queue_num = o_.config.workload.output_queue;
  bo.max_held = o_.config.limits.max_held_packets;
  bool vm = o_.config.workload.kind == WorkloadKind::kVm;
  if (vm) bo.forwarded_from = network_->link();
  RELIVE_ASSIGN_OR_RETURN(std::unique_ptr<OutputBuffer> out, OutputBuffer::create(bo));
  // No backup yet: nothing to wait for. connect_backup() starts holding.
  RELIVE_RETURN_IF_ERROR(out->set_pass_through(true));
  if (!vm) {
    bo.input = true;
    bo.queue_num = static_cast<uint16_t>(bo.queue_num + 1);
    RELIVE_ASSIGN_OR_RETURN(input_, OutputBuffer::create(bo));
    // Input is held only while an epoch's dump reads the sockets (epoch(), take_over()).
    RELIVE_RETURN_IF_ERROR(input_->set_pass_through(true));
  }
  // Output stops by the end of the lease even if this thread is busy (in a dump) when it ends.
  lease_->on_valid_until([o = out.get()](Clock::time_point t) { o->set_deadline(t); });
  std::lock_guard<std::mutex> l(mu_);
  output_ = std::move(out);
  return Status::Ok();
}

Status HaNode::begin_serving(std::unique_ptr<ProtectedWorkload> workload) {
  pid_t pid = workload->pid();
  workload_ = std::move(workload);
  need_full_ = true;
  full_reason_ = "workload started or restored";
  next_epoch_at_ = Clock::now();
  next_dial_at_ = Clock::now();
  {
    std::lock_guard<std::mutex> l(mu_);
    joined_ = true;
    workload_pid_ = pid;
    recent_.clear();  // a backup's records carry no dump figures
  }
  set_role(Role::kPrimary);
  std::printf("{\"event\":\"serving\",\"name\":\"%s\",\"pid\":%d}\n", o_.name.c_str(), pid);
  std::fflush(stdout);
  return Status::Ok();
}

void HaNode::primary_tick() {
  collect_commits();
  if (!lease_->may_serve()) {
    // Hold everything from now on; once etcd confirms the loss, or the lease can no longer be
    // ours, the other side may be serving: stop.
    (void)output_->set_pass_through(false);
    if (lease_->lost() || lease_->remaining() < -milliseconds(o_.config.failure_timeout_ms)) {
      fence("lost the lease");
      return;
    }
  } else if (pipeline_ == nullptr) {
    // Unprotected, and the lease is ours again after a slow renewal: let output pass again.
    (void)output_->set_pass_through(true);
  }
  if (!workload_->alive()) {
    fence("the workload exited");
    return;
  }
  int sw;
  {
    std::lock_guard<std::mutex> l(mu_);
    sw = switchover_state_;
  }
  if (pipeline_ == nullptr && Clock::now() >= next_dial_at_) connect_backup();
  if (pipeline_ != nullptr && Clock::now() >= next_epoch_at_) {
    if (pipeline_->has_room()) {
      next_epoch_at_ += milliseconds(o_.config.epoch_ms);
      if (next_epoch_at_ < Clock::now()) next_epoch_at_ = Clock::now();
      epoch();
    }
    // Else the backup is behind: no epoch until one of those in flight commits (the workload
    // runs on; its output waits).
    if (sw == 1 && pipeline_ != nullptr && !need_full_) {
      finish_switchover();
      return;
    }
  }
  if (sw == 1 && pipeline_ == nullptr) {
    std::lock_guard<std::mutex> l(mu_);
    switchover_error_ = "no backup is connected";
    switchover_state_ = 3;
    cv_.notify_all();
  }
  auto wake =
      pipeline_ != nullptr ? next_epoch_at_ : Clock::now() + milliseconds(o_.config.heartbeat_ms);
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_until(l, wake,
                 [this] { return pipeline_event_ || (switchover_state_ == 1 && protected_); });
  pipeline_event_ = false;
}

// The epochs the backup acknowledged since the last look: their output goes (if the lease is
// certainly ours), their figures are recorded. A failed pipeline is a lost backup.
void HaNode::collect_commits() {
  if (pipeline_ == nullptr) return;
  bool pipelined = o_.config.workload.kind == WorkloadKind::kProcess;
  for (EpochPipeline::Committed& c : pipeline_->take_committed()) {
    const CapturedEpoch& e = c.epoch;
    // A VM's capture keeps state (its disks' copies) until the backup has the epoch.
    if (!pipelined) workload_->committed();
    if (lease_->may_serve()) (void)output_->release_through(e.number);
    metrics_.epoch_committed(ms(e.frozen), ms(c.committed - c.started), c.shipped.wire_bytes,
                             e.disk_bytes);
    std::lock_guard<std::mutex> l(mu_);
    protected_ = true;
    committed_ = e.number;
    last_commit_ = c.committed;
    ++epochs_total_;
    if (e.patch) ++fast_epochs_total_;
    recent_.push_back({last_commit_, ms(e.frozen), ms(c.committed - c.started),
                       c.shipped.wire_bytes, e.number, e.slow_reason, e.disk_bytes});
    while (recent_.size() > 400) recent_.pop_front();
  }
  size_t in_flight = pipeline_->in_flight();
  {
    std::lock_guard<std::mutex> l(mu_);
    in_flight_ = in_flight;
  }
  if (std::optional<Status> f = pipeline_->failure()) lose_backup(*f);
}

void HaNode::connect_backup() {
  next_dial_at_ = Clock::now() + milliseconds(o_.config.heartbeat_ms * 5);
  Result<std::unique_ptr<security::Channel>> ch =
      security::connect_channel(other().host, other().port, channel_options(other().name));
  if (!ch.ok()) return;
  auto link = std::make_unique<transfer::Link>(std::move(*ch));
  if (Status s = link->hello(o_.name); !s.ok()) return;
  RELIVE_LOG_INFO("backup {} connected: full epoch next", other().name);
  // From now on output waits for the backup; the full epoch below covers everything that was
  // released before.
  (void)output_->set_pass_through(false);
  workload_->reset();
  need_full_ = true;
  full_reason_ = "backup connected";
  EpochPipeline::Options po;
  po.primary = o_.name;
  // A VM's epochs go one at a time (its capture keeps its disks' copies until the commit).
  po.max_in_flight =
      o_.config.workload.kind == WorkloadKind::kProcess ? o_.config.limits.max_epochs_in_flight : 1;
  po.heartbeat = milliseconds(o_.config.heartbeat_ms);
  po.wake = [this] {
    std::lock_guard<std::mutex> l(mu_);
    pipeline_event_ = true;
    cv_.notify_all();
  };
  pipeline_ = std::make_unique<EpochPipeline>(std::move(link), std::move(po));
  next_epoch_at_ = Clock::now();
}

void HaNode::epoch() {
  uint64_t n = next_epoch_;
  ScopedLogContext log_ctx("epoch", std::to_string(n));  // on every line logged for this epoch
  auto t0 = Clock::now();
  // Packets from now on belong to the next epoch: those sent before the freeze below are in
  // this one's state or earlier, those sent after may be held one epoch longer, never less.
  output_->set_epoch(n + 1);
  // Input waits (queued, not dropped) while CRIU reads the sockets; see OutputBuffer::Options.
  if (input_) (void)input_->set_pass_through(false);
  std::string slow_path = need_full_ ? "full epoch: " + full_reason_ : "";
  Result<CapturedEpoch> e = workload_->capture(n, need_full_);
  if (input_) (void)input_->set_pass_through(true);
  // The backup holds an epoch's directory changes in memory until the commit, up to
  // limits.max_epoch_bytes (pages beyond it wait on its disk). A delta carries at most what a
  // full epoch would (the changed blocks of the files as they are), so a full one does not help.
  const uint64_t max_bytes = o_.config.limits.max_epoch_bytes;
  if (uint64_t dir_bytes = e.ok() ? dir_change_bytes(e->dir) : 0; dir_bytes > max_bytes) {
    // Dropped after its capture moved the workload's trackers on: start over from a full one.
    if (e->own_dir) (void)remove_tree(e->images_dir);
    workload_->reset();
    need_full_ = true;
    full_reason_ = "an epoch was dropped";
    e = Status::Unsupported(
        fmt::format("{} MiB written to the workload directory in one epoch, more than "
                    "limits.max_epoch_bytes ({} MiB) allows",
                    dir_bytes >> 20, max_bytes >> 20));
  }
  if (!e.ok()) {
    // The workload runs on; the backup is still at the last committed epoch, and output waits
    // for the next one. A failure that lasts (CRIU cannot dump this workload, it keeps a
    // /proc/<pid> file open) would hold the service's output for ever: past the limit the
    // primary gives up on protection as when the backup is lost, serves unprotected and says
    // why; a backup that reconnects starts over with a full epoch.
    RELIVE_LOG_WARN("epoch {}: checkpoint failed: {}", n, e.status().to_string());
    if (failing_since_ == Clock::time_point{}) {  // one alert per run of failures
      failing_since_ = Clock::now();
      std::lock_guard<std::mutex> l(mu_);
      alerts_.push_back("checkpoint failed: " + e.status().to_string());
      if (alerts_.size() > 20) alerts_.erase(alerts_.begin());
    }
    auto limit = milliseconds(std::max<uint32_t>(2000, 2 * o_.config.failure_timeout_ms));
    if (Clock::now() - failing_since_ >= limit) {
      failing_since_ = {};
      lose_backup(e.status().with_context(
          fmt::format("every checkpoint failed for {} ms; the last", ms(limit))));
    }
    return;
  }
  failing_since_ = {};
  if (!need_full_ && !e->patch) {
    slow_path = e->slow_reason.empty() ? "CRIU dump" : "CRIU dump: " + e->slow_reason;
  }
  if (!slow_path.empty()) RELIVE_LOG_DEBUG("epoch {}: {}", n, slow_path);
  ++next_epoch_;
  // The next epoch is a delta against this one, shipped after it: a failure to ship anything
  // in flight loses the backup, and the next epoch is full again.
  if (o_.config.workload.kind == WorkloadKind::kProcess) workload_->committed();
  need_full_ = false;
  e->slow_reason = std::move(slow_path);  // from here on: what `relive ha status` shows
  pipeline_->submit(std::move(*e), t0);
}

void HaNode::lose_backup(const Status& why) {
  RELIVE_LOG_WARN("ALERT: backup lost, serving unprotected: {}", why.to_string());
  EpochPipeline::abandon(std::move(pipeline_));
  workload_->reset();
  need_full_ = true;
  full_reason_ = "backup lost";
  if (lease_->may_serve()) (void)output_->set_pass_through(true);
  std::lock_guard<std::mutex> l(mu_);
  protected_ = false;
  in_flight_ = 0;
  alerts_.push_back("backup lost: " + why.to_string());
  if (alerts_.size() > 20) alerts_.erase(alerts_.begin());
}

// Planned switchover: the epoch just committed holds everything any client has seen; the
// workload is stopped (what it did since is never released), the lease handed back, and the
// backup told to take over.
void HaNode::finish_switchover() {
  // Every epoch in flight first: the last one holds everything any client has been sent.
  Result<std::unique_ptr<transfer::Link>> link = pipeline_->drain();
  if (!link.ok()) {
    lose_backup(link.status());
    std::lock_guard<std::mutex> l(mu_);
    switchover_error_ = "the backup was lost: " + link.status().to_string();
    switchover_state_ = 3;
    cv_.notify_all();
    return;
  }
  collect_commits();
  pipeline_.reset();
  RELIVE_LOG_INFO("switchover: handing over to {} at epoch {}", other().name, committed_);
  workload_->kill();
  workload_.reset();
  (void)output_->drop_all();
  Status told = (*link)->call(m::HaSwitchover{}).status();
  lease_->on_valid_until(nullptr);  // the buffer it feeds goes now
  {
    std::lock_guard<std::mutex> l(mu_);
    output_.reset();
  }
  input_.reset();
  link->reset();
  network_.reset();  // its destructor takes the route and the namespace down
  Status released = lease_->release();
  {
    std::lock_guard<std::mutex> l(mu_);
    lease_.reset();
    committed_ = 0;
    protected_ = false;
    workload_pid_ = 0;
    switchover_state_ = told.ok() ? 2 : 3;
    switchover_error_ = told.ok() ? "" : told.to_string();
  }
  cv_.notify_all();
  {
    std::lock_guard<std::mutex> r(replica_mu_);
    Result<std::unique_ptr<Replica>> fresh =
        Replica::open(o_.state_dir + "/replica", o_.config.limits.max_epoch_bytes);
    if (fresh.ok()) replica_ = std::move(*fresh);
  }
  if (!released.ok()) RELIVE_LOG_WARN("releasing the lease: {}", released.to_string());
  set_role(Role::kBackup);
}

}  // namespace relive::ha
