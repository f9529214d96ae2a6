#include "migrate/vm_disk_mirror.h"

#include <algorithm>
#include <thread>

#include "common/clock.h"
#include "common/json_field.h"
#include "common/logging.h"
#include "common/subprocess.h"

namespace relive::migrate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kAbortTimeout{30000};
// A forced cancel on a healthy link ends this fast; longer, the link is presumed stuck.
constexpr milliseconds kCancelGrace{3000};

std::string job_id(const std::string& device) { return "relive-mirror-" + device; }
std::string node_name(const std::string& device) { return "relive-nbd-" + device; }

}  // namespace

Status DiskMirrors::start(const NbdTarget& t) {
  started_ = Clock::now();
  target_ = t;
  for (const migration::VmDisk& d : disks_) {
    nlohmann::json node = {
        {"driver", "nbd"},
        {"node-name", node_name(d.device)},
        {"server", {{"type", "inet"}, {"host", t.host}, {"port", std::to_string(t.port)}}},
        {"export", d.device}};
    if (!t.tls_creds.empty()) {
      node["tls-creds"] = t.tls_creds;
      node["tls-hostname"] = t.tls_hostname;
    }
    Status added = qmp_->execute("blockdev-add", node).status();
    if (!added.ok()) return added.with_context("connecting to the destination's disk " + d.device);
    nodes_.push_back(node_name(d.device));
    // A qcow2 overlay on a base the destination has too: only what the overlay holds travels.
    std::string sync = d.backing_file.empty() ? "full" : "top";
    nlohmann::json mirror = {{"job-id", job_id(d.device)},
                             {"device", d.device},
                             {"target", node_name(d.device)},
                             {"sync", sync},
                             {"auto-dismiss", false}};
    Status started = qmp_->execute("blockdev-mirror", mirror).status();
    if (!started.ok()) return started.with_context("mirroring disk " + d.device);
    jobs_.push_back(job_id(d.device));
    reports_.push_back({d.device, d.format, sync, 0, d.virtual_size, 0});
  }
  return Status::Ok();
}

Result<nlohmann::json> DiskMirrors::job(const std::string& id) {
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json jobs, qmp_->execute("query-jobs"));
  if (!jobs.is_array()) return Status::Corruption("query-jobs did not answer a list");
  for (const nlohmann::json& j : jobs) {
    if (json_value_or(j, "id", "") == id) return j;
  }
  return nlohmann::json(nullptr);
}

Result<bool> DiskMirrors::all_ready() {
  bool ready = true;
  for (const std::string& id : jobs_) {
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json j, job(id));
    if (j.is_null()) return Status::IoError("mirror " + id + " vanished");
    std::string status = json_value_or(j, "status", "");
    if (status == "concluded" || status == "aborting" || status == "null") {
      return Status::IoError("mirror " + id + " failed: " +
                             json_value_or(j, "error", "it ended before it was in sync"));
    }
    if (status != "ready" && status != "standby") ready = false;
  }
  return ready;
}

Result<nlohmann::json> DiskMirrors::wait_concluded(const std::string& id, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (milliseconds pause{1};;) {
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json j, job(id));
    if (j.is_null() || json_value_or(j, "status", "") == "concluded") return j;
    if (Clock::now() > deadline)
      return Status::IoError("mirror " + id + " did not end within " +
                             std::to_string(timeout.count()) + " ms: " + j.dump());
    // At the switch-over the VM is stopped and a mirror ends within milliseconds: look again
    // soon, then less often (each look is one QMP round trip on a local socket).
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(20));
  }
}

Status DiskMirrors::complete(milliseconds timeout) {
  for (size_t i = 0; i < jobs_.size(); ++i) {
    const std::string& id = jobs_[i];
    // A ready mirror cancelled without force finishes in sync and does not pivot.
    RELIVE_RETURN_IF_ERROR(
        qmp_->execute("block-job-cancel", {{"device", id}, {"force", false}}).status());
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json j, wait_concluded(id, timeout));
    if (j.is_null()) return Status::IoError("mirror " + id + " vanished before it ended");
    std::string error = json_value_or(j, "error", "");
    if (!error.empty()) return Status::IoError("mirror " + id + " ended with an error: " + error);
    reports_[i].bytes = json_value_or<uint64_t>(j, "current-progress", 0);
    reports_[i].ms = ms_since(started_);
    (void)qmp_->execute("job-dismiss", {{"id", id}});
  }
  jobs_.clear();
  remove_nodes();
  done_ = true;
  return Status::Ok();
}

void DiskMirrors::abort() {
  if (done_) return;
  done_ = true;
  for (const std::string& id : jobs_)
    (void)qmp_->execute("block-job-cancel", {{"device", id}, {"force", true}});
  bool stuck = false;
  for (const std::string& id : jobs_) stuck = stuck || !wait_concluded(id, kCancelGrace).ok();
  if (stuck) cut_connections();
  for (const std::string& id : jobs_) {
    Result<nlohmann::json> j = wait_concluded(id, kAbortTimeout);
    if (!j.ok()) RELIVE_LOG_WARN("cancelling {}: {}", id, j.status().to_string());
    (void)qmp_->execute("job-dismiss", {{"id", id}});
  }
  jobs_.clear();
  remove_nodes();
}

void DiskMirrors::cut_connections() {
  if (target_.host.empty() || target_.port == 0) return;
  RunOptions o;
  o.timeout = std::chrono::seconds(10);
  Result<RunResult> r =
      run({"ss", "-K", "-t", "dst", target_.host, "dport", "=", std::to_string(target_.port)}, o);
  if (!r.ok() || !r->ok()) {
    RELIVE_LOG_WARN("destroying the NBD connections to {}:{}: {}", target_.host, target_.port,
                    r.ok() ? r->describe() + " " + r->output : r.status().to_string());
  }
}

void DiskMirrors::remove_nodes() {
  for (const std::string& n : nodes_) {
    Status s = qmp_->execute("blockdev-del", {{"node-name", n}}).status();
    if (!s.ok()) RELIVE_LOG_WARN("removing {}: {}", n, s.to_string());
  }
  nodes_.clear();
}

}  // namespace relive::migrate
