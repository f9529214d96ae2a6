#include "migrate/source.h"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/process_tree.h"
#include "common/subprocess.h"
#include "migrate/image_dir.h"
#include "migrate/peer_replies.h"

namespace relive::migrate {

namespace m = relive::migration;

void Source::progress(const std::string& line) const {
  if (!o_.progress) return;
  std::string out = line;
  // The bytes shipped so far (relive's progress bar shows them), unless the line says already.
  if (report_.bytes_total > 0 && line.find(" bytes=") == std::string::npos)
    out += fmt::format(" sent={}", report_.bytes_total);
  // Once frozen, each line says how long the workload has been down.
  if (freeze_ != Clock::time_point{} && !done_)
    out += fmt::format(" frozen_for={:.0f}ms", ms_between(freeze_, Clock::now()));
  o_.progress(out);
}

Status Source::open_runc() {
  RELIVE_ASSIGN_OR_RETURN(container::Runc r, container::Runc::find(o_.criu_timeout));
  runc_.emplace(std::move(r));
  RELIVE_ASSIGN_OR_RETURN(runc_state_, runc_->state(o_.runc_name));
  if (runc_state_.status != "running")
    return Status::InvalidArgument("container " + o_.runc_name + " is " + runc_state_.status +
                                   ", not running");
  RELIVE_ASSIGN_OR_RETURN(tree_, process_tree(runc_state_.pid));
  return Status::Ok();
}

Status Source::open(m::Strategy strategy) {
  if (!o_.runc_name.empty()) {
    RELIVE_RETURN_IF_ERROR(open_runc());
  } else {
    RELIVE_ASSIGN_OR_RETURN(tree_, process_tree(o_.pid));
  }
  if (!o_.process_tree && tree_.size() > 1) {
    return Status::Unsupported(fmt::format(
        "process {} has {} descendants; migrate a process tree with `relive container migrate`",
        o_.pid, tree_.size() - 1));
  }
  if (!o_.service_address.empty()) {
    RELIVE_ASSIGN_OR_RETURN(net::ServiceAddress a, net::parse_service_address(o_.service_address));
    if (!net::address_present(a))
      return Status::InvalidArgument("service address " + a.text + " is not on this host");
    RELIVE_ASSIGN_OR_RETURN(svc_dev_, net::interface_for(a));
    svc_ = a;
  }
  // Images a killed relive left behind (they may be as large as its workload, in memory).
  if (int n = WorkDir::remove_abandoned(default_image_root(o_.work_dir), "migrate"); n > 0)
    RELIVE_LOG_INFO("removed {} work directories left by migrations that did not end", n);
  RELIVE_ASSIGN_OR_RETURN(WorkDir w, WorkDir::create(default_image_root(o_.work_dir), "migrate"));
  work_.emplace(std::move(w));
  images_ = work_->path() + "/images";
  RELIVE_RETURN_IF_ERROR(make_dirs(images_));

  RELIVE_ASSIGN_OR_RETURN(link_, transfer::open_link(o_, limiter_));
  m::Begin b;
  b.kind = runc_             ? m::WorkloadKind::kRunc
           : o_.process_tree ? m::WorkloadKind::kProcessTree
                             : m::WorkloadKind::kProcess;
  b.strategy = strategy;
  b.name = runc_ ? o_.runc_name : o_.name;
  b.service_address = svc_ ? svc_->cidr : "";
  b.tcp_established = o_.tcp_established;
  b.source_node = o_.node_name;
  b.root_pid = runc_ ? runc_state_.pid : o_.pid;
  RELIVE_RETURN_IF_ERROR(link_->call(b).status());
  report_.strategy = m::strategy_name(strategy);
  progress(fmt::format("phase=connected strategy={} to={}:{}{}", report_.strategy, o_.to_host,
                       o_.to_port,
                       o_.max_bandwidth > 0 ? fmt::format(" max_bandwidth={}B/s", o_.max_bandwidth)
                                            : std::string()));
  return Status::Ok();
}

Status Source::freeze_begins() {
  if (freeze_ != Clock::time_point{}) return Status::Ok();  // already frozen
  freeze_ = Clock::now();
  if (svc_) {
    RELIVE_ASSIGN_OR_RETURN(net::TrafficLock l, net::TrafficLock::engage(*svc_));
    lock_.emplace(std::move(l));
  }
  return Status::Ok();
}

Status Source::release_address() {
  if (!svc_) return Status::Ok();
  RELIVE_RETURN_IF_ERROR(net::remove_address(*svc_, svc_dev_));
  address_released_ = true;
  return Status::Ok();
}

void Source::switch_strategy(const std::string& strategy, const std::string& why) {
  progress(fmt::format("auto: switching from {} to {}: {}", report_.strategy, strategy, why));
  report_.reason += fmt::format("; then {} ({}), switched to {}", report_.strategy, why, strategy);
  report_.strategy = strategy;
}

void Source::add_bytes(const std::string& phase, uint64_t n) {
  report_.bytes_by_phase[phase] += n;
  report_.bytes_total += n;
}

Status Source::switch_over(const m::Restore& restore) {
  progress("phase=restore");
  // The destination adds its own time to the resume to this for its downtime metric.
  m::Restore told = restore;
  if (freeze_ != Clock::time_point{}) told.frozen_ms = ms_between(freeze_, Clock::now());
  RELIVE_ASSIGN_OR_RETURN(m::Reply restored, link_->call_reply(told));
  // A reply we cannot read: nothing is committed yet, so the source resumes (the rollback) and
  // the destination, never told to commit, undoes its copy.
  RELIVE_ASSIGN_OR_RETURN(m::OutcomeReply reply,
                          reply_as<m::OutcomeReply>(restored, "the destination's restore reply"));
  report_.restore_ms = reply.restore_ms;
  report_.destination_pid = reply.root_pid;
  // From here the outcome must be known before the source may act (see the header).
  Status sent = link_->send(m::Commit{});
  Result<m::Reply> acked = sent.ok() ? link_->wait_reply() : Result<m::Reply>(sent);
  if (!acked.ok() && link_->peer_refused()) {
    // The destination answered: its copy did not run and is gone (Session::commit). The source
    // is the only copy: the rollback resumes it.
    return acked.status().with_context("switch-over refused; the source runs on");
  }
  if (!acked.ok()) {
    done_ = true;  // neither resume nor kill
    return Status::Aborted(fmt::format(
        "the commit's answer was lost ({}); the destination may be running the workload, so the "
        "source is left frozen (pids {}); check the destination before resuming or killing it",
        acked.status().to_string(), fmt::join(tree_, " ")));
  }
  double frozen = ms_between(freeze_, Clock::now());
  // Committed: a reply we cannot read only loses the confirmation time from the report.
  Result<m::OutcomeReply> confirmed =
      reply_as<m::OutcomeReply>(*acked, "the destination's commit reply");
  if (confirmed.ok())
    report_.confirm_ms = std::clamp(confirmed->confirm_ms, 0.0, frozen);
  else
    RELIVE_LOG_WARN("commit acknowledged: {}", confirmed.status().to_string());
  // Downtime ends when the workload runs at the destination, before its confirmation window.
  report_.downtime_ms = frozen - report_.confirm_ms;
  done_ = true;
  return criu_ends_tree_ ? Status::Ok() : end_source();
}

Status Source::end_source() {
  if (runc_) {
    runc_paused_ = false;
    Status s = runc_->destroy(o_.runc_name);
    if (!s.ok()) RELIVE_LOG_WARN("ending the source container: {}", s.to_string());
  }
  signal_all(tree_, SIGKILL);
  if (svc_) {
    // Sockets of the dead tree may still hold the address (FIN_WAIT); destroy them while the
    // lock still drops whatever they would send, then lift the lock.
    (void)relive::run({"/usr/bin/ss", "-K", "-t", "src", svc_->text},
                      {.timeout = std::chrono::seconds(10)});
  }
  if (lock_) lock_->release();
  return Status::Ok();
}

void Source::rollback() {
  if (done_) return;
  if (link_ && !aborted_) {
    aborted_ = true;
    (void)link_->send(m::Abort{"the source failed"});
  }
  if (address_released_) {
    Status s = net::add_address(*svc_, svc_dev_);
    if (!s.ok()) RELIVE_LOG_WARN("could not take the service address back: {}", s.to_string());
  }
  if (lock_) lock_->release();
  if (tree_stopped_) signal_all(tree_, SIGCONT);
  if (runc_paused_) {
    Status s = runc_->resume(o_.runc_name);
    if (!s.ok()) RELIVE_LOG_WARN("could not resume container {}: {}", o_.runc_name, s.to_string());
  }
}

MigrateReport Source::finish() {
  report_.total_ms = ms_between(start_, Clock::now());
  if (report_.reason.empty()) report_.reason = "requested";
  transfer::RateStats sent = limiter_->stats();
  report_.max_bandwidth = o_.max_bandwidth;
  report_.link_bytes = sent.bytes;
  report_.link_busy_ms = sent.busy_ms;
  report_.link_rate = sent.rate();
  return report_;
}

}  // namespace relive::migrate
