#include "ha/ha_node.h"

#include <fmt/format.h>
#include <sys/prctl.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/logging.h"
#include "drivers/criu/criu_binary.h"
#include "ha/process_workload.h"
#include "ha/vm_workload.h"
#include "ha/workload_launch.h"
#include "security/keys.h"
#include "security/listener.h"

namespace relive::ha {
namespace m = relive::migration;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const char* role_name(Role r) {
  switch (r) {
    case Role::kStarting:
      return "starting";
    case Role::kPrimary:
      return "primary";
    case Role::kBackup:
      return "backup";
    case Role::kFenced:
      return "fenced";
  }
  return "?";
}

HaNode::HaNode(HaNodeOptions o) : o_(std::move(o)), metrics_(o_.metrics) {}

HaNode::~HaNode() {
  for (std::thread& t : connections_) {
    if (t.joinable()) t.join();
  }
}

Result<std::unique_ptr<HaNode>> HaNode::create(HaNodeOptions options) {
  if (options.config.peer(options.name) == nullptr) {
    return Status::InvalidArgument(
        fmt::format("--name {}: not one of the config's peers", options.name));
  }
  std::unique_ptr<HaNode> n(new HaNode(std::move(options)));
  RELIVE_RETURN_IF_ERROR(make_dirs(n->o_.state_dir));
  RELIVE_ASSIGN_OR_RETURN(security::AuditLog audit,
                          security::AuditLog::open(n->o_.state_dir + "/audit.jsonl"));
  n->audit_ = std::make_unique<security::AuditLog>(std::move(audit));
  n->gate_ = std::make_unique<security::RequestGate>(&n->guard_, n->audit_.get());
  RELIVE_ASSIGN_OR_RETURN(n->replica_, Replica::open(n->o_.state_dir + "/replica",
                                                     n->o_.config.limits.max_epoch_bytes));
  n->metrics_.watch([node = n.get()] { return node->snapshot(); });
  return n;
}

const PeerConfig& HaNode::self() const { return *o_.config.peer(o_.name); }

const PeerConfig& HaNode::other() const {
  return o_.config.peers[0].name == o_.name ? o_.config.peers[1] : o_.config.peers[0];
}

security::ChannelOptions HaNode::channel_options(const std::string& expected_peer) const {
  security::ChannelOptions co;
  if (o_.insecure) {
    co.insecure = true;
  } else {
    co = security::tls_options_for_host(o_.config.tls_dir, o_.name, expected_peer);
  }
  co.timeout = milliseconds(std::max<uint32_t>(2 * o_.config.failure_timeout_ms, 2000));
  return co;
}

void HaNode::set_role(Role r) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (role_ == r) return;
    role_ = r;
  }
  RELIVE_LOG_INFO("role {} ({} is now {})", role_name(r), o_.name, role_name(r));
  cv_.notify_all();
}

Status HaNode::run(const std::atomic<bool>* stop) {
  // Restored workloads are reparented to the nearest subreaper: us, so we can watch and reap.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (Result<std::string> criu = criu::find_criu(); criu.ok()) {
    kdat_ = std::make_unique<criu::KdatCache>(criu::KdatCache::prime(*criu));
    RELIVE_LOG_INFO("{}", kdat_->note());
  }
  RELIVE_ASSIGN_OR_RETURN(
      security::Listener listener,
      security::Listener::create(self().host, self().port, channel_options("")));
  RELIVE_LOG_INFO("HA peer {} listening on {}:{} ({})", o_.name, self().host, listener.port(),
                  o_.insecure ? "INSECURE plaintext" : "TLS 1.3, mutual authentication");
  std::thread accept_thread([&] { listen_loop(&listener, stop); });
  while (!*stop) {
    Role r;
    {
      std::lock_guard<std::mutex> l(mu_);
      r = role_;
    }
    switch (r) {
      case Role::kStarting:
        start();
        break;
      case Role::kPrimary:
        primary_tick();
        break;
      case Role::kBackup:
        backup_tick();
        break;
      case Role::kFenced:
        set_role(Role::kBackup);
        break;
    }
  }
  accept_thread.join();
  // The workload is left running: relived stopping is not a failure of the service.
  return Status::Ok();
}

void HaNode::listen_loop(security::Listener* listener, const std::atomic<bool>* stop) {
  while (!*stop) {
    Result<std::unique_ptr<security::Channel>> ch = listener->accept();
    if (!ch.ok()) {
      if (ch.status().message().find("timed out") == std::string::npos) {
        RELIVE_LOG_WARN("refused a connection: {}", ch.status().to_string());
      }
      continue;
    }
    std::lock_guard<std::mutex> l(mu_);
    connections_.emplace_back(
        [this, c = std::move(*ch)]() mutable { serve_connection(std::move(c)); });
  }
}

void HaNode::serve_connection(std::unique_ptr<security::Channel> channel) {
  std::string who = channel->peer().address;
  transfer::Link link(std::move(channel));
  if (Status s = link.accept_hello(gate_.get(), o_.name); !s.ok()) {
    RELIVE_LOG_WARN("hello from {} refused: {}", who, s.to_string());
    return;
  }
  const security::PeerIdentity& peer = link.channel().peer();
  // Only the pair's own certificates are served: the other peer (replication) or this host
  // (the `relive ha` commands run here with this host's key).
  if (!o_.insecure && peer.dns_name != other().name && peer.dns_name != o_.name) {
    (void)link.fail(Status::Aborted("unknown peer '" + peer.dns_name + "': not in the HA pair"));
    RELIVE_LOG_WARN("refused unknown peer {} from {}", peer.dns_name, who);
    return;
  }
  bool from_other = o_.insecure || peer.dns_name == other().name;
  for (;;) {
    Result<m::Command> c = link.next_command(gate_.get());
    if (!c.ok()) return;  // closed, timed out or refused (the refusal was answered)
    Result<std::string> r = Status::Ok();
    bool primary;
    {
      std::lock_guard<std::mutex> l(mu_);
      primary = role_ == Role::kPrimary;
    }
    if (std::holds_alternative<m::HaStatus>(*c)) {
      r = status_json();
    } else if (std::holds_alternative<m::HaSwitchover>(*c) && primary) {
      // To the primary, from an operator on either host: hand over. (To the backup, from the
      // primary, the same command means: take over; replicate() handles that.)
      r = switchover_request();
    } else if (from_other) {
      r = replicate(&link, *c);
    } else {
      r = Status::Aborted(std::string(m::command_name(*c)) + " is for the HA peer only");
    }
    Status sent = r.ok() ? link.ack(*r) : link.fail(r.status());
    if (!r.ok())
      RELIVE_LOG_WARN("{} from {}: {}", m::command_name(*c), who, r.status().to_string());
    if (!sent.ok() || !r.ok()) return;
  }
}

Result<std::string> HaNode::replicate(transfer::Link* link, const m::Command& c) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (role_ != Role::kBackup) {
      return Status::Aborted(fmt::format("{} is {}, not a backup", o_.name, role_name(role_)));
    }
    last_heard_ = Clock::now();
    joined_ = true;
  }
  std::lock_guard<std::mutex> r(replica_mu_);
  if (const auto* e = std::get_if<m::HaEpoch>(&c)) {
    if (e->primary != other().name) {
      return Status::Aborted("epoch from '" + e->primary + "', which is not the pair's peer");
    }
    RELIVE_RETURN_IF_ERROR(replica_->begin(*e));
  } else if (const auto* f = std::get_if<m::FileBatch>(&c)) {
    RELIVE_RETURN_IF_ERROR(replica_->receive_images(&link->channel(), *f));
  } else if (std::holds_alternative<m::PageRound>(c)) {
    RELIVE_RETURN_IF_ERROR(replica_->receive_pages(&link->channel()));
  } else if (const auto* d = std::get_if<m::HaDir>(&c)) {
    RELIVE_RETURN_IF_ERROR(replica_->receive_dir(&link->channel(), *d));
  } else if (const auto* k = std::get_if<m::HaCommit>(&c)) {
    RELIVE_RETURN_IF_ERROR(replica_->commit(k->epoch));
    metrics_.epoch_applied();
    std::lock_guard<std::mutex> l(mu_);
    committed_ = k->epoch;
    last_commit_ = Clock::now();
    ++epochs_total_;
    recent_.push_back({last_commit_, 0, 0, 0, k->epoch, "", 0});
    while (recent_.size() > 200) recent_.pop_front();
  } else if (std::holds_alternative<m::HaHeartbeat>(c)) {
    // last_heard_ is all it is for
  } else if (std::holds_alternative<m::HaSwitchover>(c)) {
    if (!replica_->has_epoch()) return Status::Aborted("the backup has no epoch to take over");
    std::lock_guard<std::mutex> l(mu_);
    takeover_requested_ = true;
  } else {
    return Status::Corruption(std::string("unexpected command ") + m::command_name(c));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    last_heard_ = Clock::now();
  }
  return std::string();
}

Result<std::string> HaNode::switchover_request() {
  std::unique_lock<std::mutex> l(mu_);
  if (role_ != Role::kPrimary) {
    return Status::Aborted(fmt::format("{} is {}, not the primary", o_.name, role_name(role_)));
  }
  if (switchover_state_ == 1) return Status::Aborted("a switchover is already under way");
  switchover_state_ = 1;
  cv_.wait_for(l, std::chrono::seconds(60), [this] { return switchover_state_ != 1; });
  int st = switchover_state_;
  switchover_state_ = 0;
  if (st == 2) return fmt::format("{} handed over to {}", o_.name, other().name);
  return Status::Aborted("switchover failed: " +
                         (st == 1 ? std::string("timed out") : switchover_error_));
}

HaSnapshot HaNode::snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  HaSnapshot s;
  s.role = role_name(role_);
  s.committed_epoch = committed_;
  if (role_ != Role::kPrimary) return s;
  s.is_protected = protected_;
  if (protected_ && committed_ > 0)
    s.lag_s = std::chrono::duration<double>(Clock::now() - last_commit_).count();
  if (lease_) {
    s.lease_held = lease_->may_serve();
    s.lease_remaining_s = static_cast<double>(lease_->remaining().count()) / 1000;
  }
  if (output_) {
    OutputBuffer::Stats o = output_->stats();
    s.has_output = true;
    s.output_held = o.held;
    s.output_released = o.released;
    s.output_dropped = o.dropped;
  }
  return s;
}

std::string HaNode::status_json() const {
  std::lock_guard<std::mutex> l(mu_);
  auto now = Clock::now();
  nlohmann::json j;
  j["name"] = o_.name;
  j["peer"] = other().name;
  j["role"] = role_name(role_);
  j["committed_epoch"] = committed_;
  j["epochs"] = epochs_total_;
  j["fast_epochs"] = fast_epochs_total_;
  if (role_ == Role::kPrimary) j["epochs_in_flight"] = in_flight_;
  double rate = 0, frozen = 0, frozen_max = 0, epoch_ms = 0;
  uint64_t bytes = 0, disk_bytes = 0;
  size_t n = 0;
  std::vector<double> frozen_all;
  nlohmann::json slow = nlohmann::json::array();
  for (const EpochStat& e : recent_) {
    if (!e.slow_path.empty()) slow.push_back(fmt::format("epoch {}: {}", e.epoch, e.slow_path));
    if (now - e.at > std::chrono::seconds(5)) continue;
    ++n;
    frozen_all.push_back(e.frozen_ms);
    frozen += e.frozen_ms;
    frozen_max = std::max(frozen_max, e.frozen_ms);
    epoch_ms += e.epoch_ms;
    bytes += e.bytes;
    disk_bytes += e.disk_bytes;
  }
  if (n > 0 && role_ == Role::kPrimary) {  // a backup knows the rate, not the dumps
    j["frozen_ms_avg"] = frozen / static_cast<double>(n);
    j["frozen_ms_max"] = frozen_max;
    std::sort(frozen_all.begin(), frozen_all.end());
    j["frozen_ms_p50"] = frozen_all[frozen_all.size() / 2];
    j["frozen_ms_p99"] = frozen_all[std::min(frozen_all.size() - 1, frozen_all.size() * 99 / 100)];
    while (slow.size() > 10) slow.erase(slow.begin());  // the latest few of the kept epochs
    j["slow_path_epochs"] = slow;
    j["epoch_ms_avg"] = epoch_ms / static_cast<double>(n);
    j["epoch_bytes_avg"] = bytes / n;
    if (!o_.config.workload.disks.empty()) {
      j["disk_bytes_avg"] = disk_bytes / n;  // per epoch, before compression
      j["disk_bytes_last"] = recent_.empty() ? 0 : recent_.back().disk_bytes;
    }
  }
  rate = static_cast<double>(n) / 5.0;
  j["epochs_per_s"] = rate;
  j["last_commit_ms_ago"] =
      committed_ == 0 ? -1 : std::chrono::duration_cast<milliseconds>(now - last_commit_).count();
  if (role_ == Role::kPrimary) {
    j["protection"] = protected_ ? "protected" : "unprotected";
    // Epochs are shipped one at a time: the lag is the age of the last commit, in epochs.
    if (protected_ && committed_ > 0) {
      j["lag_epochs"] = std::chrono::duration_cast<milliseconds>(now - last_commit_).count() /
                        std::max<uint32_t>(o_.config.epoch_ms, 1);
    }
    if (output_) {
      OutputBuffer::Stats s = output_->stats();
      j["output"] = {{"held", s.held}, {"released", s.released}, {"dropped", s.dropped}};
    }
    if (lease_) j["lease_remaining_ms"] = lease_->remaining().count();
    j["workload_pid"] = workload_pid_;
  } else if (role_ == Role::kBackup) {
    j["protection"] = committed_ > 0 ? "ready" : "no epoch yet";
    j["last_heard_ms_ago"] =
        last_heard_ == Clock::time_point{}
            ? -1
            : std::chrono::duration_cast<milliseconds>(now - last_heard_).count();
  }
  j["alerts"] = alerts_;
  return j.dump();
}

void HaNode::start() {
  Result<EtcdLease> etcd = EtcdLease::create(o_.config.etcd.endpoints);
  Result<Lease> lease =
      etcd.ok() ? etcd->acquire(o_.config.etcd.lease_key, o_.name, o_.config.etcd.lease_ttl_s,
                                std::chrono::milliseconds(o_.config.etcd.fence_ms))
                : Result<Lease>(etcd.status());
  if (!lease.ok()) {
    RELIVE_LOG_INFO("not primary ({}): starting as backup", lease.status().to_string());
    set_role(Role::kBackup);
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    lease_ = std::make_unique<LeaseKeeper>(o_.config.etcd.endpoints, *lease);
  }
  if (Status s = become_primary_fresh(); !s.ok()) {
    fence("could not start the workload: " + s.to_string());
  }
}

Result<std::unique_ptr<ProtectedWorkload>> HaNode::launch_workload(Replica* replica) {
  const WorkloadConfig& w = o_.config.workload;
  switch (w.kind) {
    case WorkloadKind::kVm: {
      VmPlace place{network_->link(), o_.name, o_.state_dir};
      return replica ? restore_vm_workload(w, place, replica) : start_vm_workload(w, place);
    }
    case WorkloadKind::kProcess:
      return replica ? restore_process_workload(w, network_->netns_path(), o_.state_dir, replica,
                                                input_.get())
                     : start_process_workload(w, network_->netns_path(), o_.state_dir);
  }
  return Status::InvalidArgument("unknown workload kind");
}

void HaNode::fence(const std::string& why) {
  RELIVE_LOG_WARN("fencing {}: {}", o_.name, why);
  metrics_.fenced();
  {
    std::lock_guard<std::mutex> l(mu_);
    alerts_.push_back("fenced: " + why);
  }
  if (lease_) lease_->on_valid_until(nullptr);  // the buffer it feeds goes below
  if (output_) (void)output_->drop_all();
  if (workload_) workload_->kill();
  workload_.reset();
  EpochPipeline::abandon(std::move(pipeline_));
  if (network_) network_->down();
  network_.reset();
  if (lease_) (void)lease_->release();
  {
    std::lock_guard<std::mutex> l(mu_);
    output_.reset();
    input_.reset();
    lease_.reset();
    // The pair starts over: the new primary sends a full epoch.
    committed_ = 0;
    protected_ = false;
    workload_pid_ = 0;
  }
  {
    std::lock_guard<std::mutex> r(replica_mu_);
    Result<std::unique_ptr<Replica>> fresh =
        Replica::open(o_.state_dir + "/replica", o_.config.limits.max_epoch_bytes);
    if (fresh.ok()) replica_ = std::move(*fresh);
  }
  set_role(Role::kFenced);
}

}  // namespace relive::ha
