// HaNode as backup: failure detection, the fence, and the takeover (ha_node.h describes the
// roles). Epochs themselves are applied by the connection thread (HaNode::replicate).
#include <fmt/format.h>

#include "common/file_util.h"
#include "common/logging.h"
#include "ha/ha_node.h"

namespace relive::ha {
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

void HaNode::backup_tick() {
  bool planned, silent, ready;
  Clock::time_point heard;
  {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, milliseconds(o_.config.heartbeat_ms), [this] { return takeover_requested_; });
    planned = takeover_requested_;
    heard = last_heard_;
    takeover_requested_ = false;
    silent = last_heard_ == Clock::time_point{} ||
             Clock::now() - last_heard_ > milliseconds(o_.config.failure_timeout_ms);
  }
  // Two heartbeats missed: the primary may be gone. Warm the images of the committed epoch now,
  // while the lease is still running out, so that a takeover only moves them into place. A
  // primary that was merely slow commits a newer epoch, which supersedes this stage.
  bool suspect = planned || silent ||
                 (heard != Clock::time_point{} &&
                  Clock::now() - heard > milliseconds(2 * o_.config.heartbeat_ms));
  {
    std::lock_guard<std::mutex> r(replica_mu_);
    ready = replica_->has_epoch();
    if (ready && suspect && o_.config.workload.kind == WorkloadKind::kProcess &&
        replica_->staged_epoch() != replica_->committed_epoch()) {
      auto t0 = Clock::now();
      Status st = replica_->stage();
      if (st.ok()) {
        RELIVE_LOG_INFO("primary quiet for {} ms: epoch {} staged in {} ms",
                        std::chrono::duration_cast<milliseconds>(t0 - heard).count(),
                        replica_->committed_epoch(),
                        std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count());
      } else if (static thread_local uint64_t failed = 0; failed != replica_->committed_epoch()) {
        failed = replica_->committed_epoch();  // said once per epoch; takeover builds directly
        RELIVE_LOG_WARN("staging the committed epoch: {}", st.to_string());
      }
    }
  }
  if (suspect) {
    if (ready && !planned) watch_fence();
  } else {
    sighting_.reset();
  }
  // The network is prepared only once the primary is declared silent (or a takeover is asked
  // for), not at two missed heartbeats: a loaded primary misses two now and then, and the lease
  // wait after the declaration (fence_ms at least) covers the preparation anyway.
  bool alarm = planned || silent;
  if (alarm) last_alarm_ = Clock::now();
  if (prepared_network_ && !alarm &&
      Clock::now() - last_alarm_ > std::chrono::seconds(o_.config.etcd.lease_ttl_s)) {
    // A false alarm: the primary has been heard again for a whole lease. What was prepared for
    // its takeover goes (a later alarm prepares it afresh); a primary that is only slow now and
    // then does not make the backup build and tear down the network at every hiccup.
    prepared_network_.reset();
    RELIVE_LOG_INFO("primary heard again: the workload network prepared for a takeover is down");
  }
  if (ready && alarm && !prepared_network_ && o_.config.workload.kind == WorkloadKind::kProcess) {
    // Only the namespace and veth: nothing routes the service address here before the lease.
    Result<WorkloadNetwork> net = WorkloadNetwork::prepare(o_.config.workload, o_.name);
    if (net.ok()) {
      prepared_network_ = std::make_unique<WorkloadNetwork>(std::move(*net));
    } else if (static thread_local std::string said; said != net.status().message()) {
      said = net.status().message();  // a takeover sets the network up in full instead
      RELIVE_LOG_WARN("preparing the workload network: {}", said);
    }
  }
  if (!alarm) return;
  // Without a committed epoch there is nothing to restore: a pair that never synced waits for
  // a primary (the lease holder) rather than start a second, empty service.
  if (!ready) {
    // Only a node that has never been part of a serving pair may cold-start the workload
    // (both peers starting up, the first one is gone): anyone else would start a second,
    // empty service beside the state the pair has.
    bool cold;
    {
      std::lock_guard<std::mutex> l(mu_);
      cold = !joined_;
    }
    if (!planned && cold) start();
    return;
  }
  // The fence decides: the lease is free only once the primary's has run out, its key stood
  // still for fence_ms, or it was handed over. A partitioned backup cannot get it while the
  // primary still renews it.
  Result<Lease> lease = try_lease();
  if (!lease.ok()) {
    static thread_local std::string said;
    if (said != lease.status().message()) {
      said = lease.status().message();
      RELIVE_LOG_INFO("primary silent, but no takeover: {}", said);
    }
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    lease_ = std::make_unique<LeaseKeeper>(o_.config.etcd.endpoints, *lease);
  }
  TakeoverTimes t;
  t.heard = heard == Clock::time_point{} ? Clock::now() : heard;
  t.lease_won = Clock::now();
  Status s = take_over(&t);
  if (!s.ok()) {
    fence("takeover failed: " + s.to_string());
    return;
  }
  metrics_.took_over();
  t.serving = Clock::now();
  auto ms = [&](Clock::time_point p) {
    return std::chrono::duration_cast<milliseconds>(p - t.heard).count();
  };
  // Where the outage goes, in ms since the primary was last heard: detection is due at
  // failure_timeout_ms, the lease frees when etcd expires the primary's.
  RELIVE_LOG_INFO(
      "took over in {} ms; timeline since the primary was last heard: detect {} ms, lease won {} "
      "ms, network up {} ms, output rule {} ms, restored {} ms, serving {} ms",
      std::chrono::duration_cast<milliseconds>(t.serving - t.lease_won).count(),
      o_.config.failure_timeout_ms, ms(t.lease_won), ms(t.network_up), ms(t.output_ready),
      ms(t.restored), ms(t.serving));
}

void HaNode::watch_fence() {
  if (o_.config.etcd.fence_ms == 0) return;
  Result<EtcdLease> etcd = EtcdLease::create(o_.config.etcd.endpoints);
  Result<KeyState> k =
      etcd.ok() ? etcd->observe(o_.config.etcd.lease_key) : Result<KeyState>(etcd.status());
  if (!k.ok()) return;  // etcd unreachable: no sighting, so no early takeover either
  if (!k->holder || *k->holder == o_.name) {
    sighting_.reset();  // free (acquire takes it), or ours already
  } else if (!sighting_ || sighting_->revision != k->mod_revision) {
    sighting_ = FenceSighting{k->mod_revision, Clock::now()};
  }
}

Result<Lease> HaNode::try_lease() {
  const EtcdConfig& c = o_.config.etcd;
  milliseconds fence(c.fence_ms);
  RELIVE_ASSIGN_OR_RETURN(EtcdLease etcd, EtcdLease::create(c.endpoints));
  Result<Lease> lease = etcd.acquire(c.lease_key, o_.name, c.lease_ttl_s, fence);
  if (lease.ok() || lease.status().code() != Status::Code::kAborted || !sighting_) return lease;
  // Held. Its holder counts itself valid until `fence` after sending the renewal that made the
  // revision seen, which was before it was seen: wait that long by this clock, plus a margin
  // for the two clocks' rates (10 %) and scheduling.
  if (Clock::now() < sighting_->seen + fence + fence / 10 + milliseconds(20)) return lease;
  Result<Lease> taken =
      etcd.take_over(c.lease_key, o_.name, c.lease_ttl_s, fence, sighting_->revision);
  if (taken.ok()) {
    RELIVE_LOG_INFO(
        "the primary's fence key stood still for {} ms: taken over",
        std::chrono::duration_cast<milliseconds>(Clock::now() - sighting_->seen).count());
  }
  sighting_.reset();  // moved on, or taken: a new sighting starts the wait again
  return taken;
}

Status HaNode::take_over(TakeoverTimes* t) {
  std::lock_guard<std::mutex> r(replica_mu_);
  uint64_t epoch = replica_->committed_epoch();
  ScopedLogContext log_ctx("epoch", std::to_string(epoch));
  RELIVE_LOG_INFO("taking over from epoch {}", epoch);
  const WorkloadConfig& w = o_.config.workload;
  std::unique_ptr<WorkloadNetwork> prepared = std::move(prepared_network_);
  if (prepared && w.kind == WorkloadKind::kProcess && prepared->claim().ok()) {
    network_ = std::move(prepared);
  } else {
    prepared.reset();  // takes down what was prepared before up() makes it afresh
    RELIVE_ASSIGN_OR_RETURN(WorkloadNetwork net, WorkloadNetwork::up(w, o_.name));
    network_ = std::make_unique<WorkloadNetwork>(std::move(net));
  }
  t->network_up = Clock::now();
  // The output rule exists before the workload does: nothing it sends escapes unaccounted.
  RELIVE_RETURN_IF_ERROR(begin_output());
  t->output_ready = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(std::unique_ptr<ProtectedWorkload> restored,
                          launch_workload(replica_.get()));
  t->restored = Clock::now();
  {
    std::lock_guard<std::mutex> l(mu_);
    committed_ = epoch;
    next_epoch_ = epoch + 1;
    alerts_.push_back(fmt::format("took over from epoch {}", epoch));
  }
  return begin_serving(std::move(restored));
}

}  // namespace relive::ha
