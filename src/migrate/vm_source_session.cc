#include "migrate/vm_source_session.h"

#include <chrono>

#include "common/json_field.h"
#include "common/logging.h"
#include "drivers/qemu/vm_command_line.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;

constexpr std::chrono::milliseconds kQmpTimeout{30000};

}  // namespace

Status VmSourceSession::attach() {
  RELIVE_ASSIGN_OR_RETURN(qemu::QmpClient c, qemu::QmpClient::connect(o_.vm_qmp, kQmpTimeout));
  qmp_.emplace(std::move(c));
  RELIVE_ASSIGN_OR_RETURN(argv_, qemu::process_argv(qmp_->peer_pid()));
  RELIVE_ASSIGN_OR_RETURN(args_, qemu::migratable_args(argv_));
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json st, qmp_->execute("query-status"));
  was_running_ = json_value_or(st, "running", false);
  run_state_ = json_value_or(st, "status", "");
  return Status::Ok();
}

Result<m::Reply> VmSourceSession::begin(m::Begin b) {
  RELIVE_ASSIGN_OR_RETURN(link_, transfer::open_link(o_));
  b.kind = m::WorkloadKind::kVm;
  b.name = o_.name;
  b.source_node = o_.node_name;
  b.vm_args = args_;
  return link_->call_reply(b);
}

void VmSourceSession::rollback(const std::function<void()>& undo) {
  if (settled_ || !qmp_) return;
  settled_ = true;
  if (undo) undo();
  if (link_) (void)link_->send(m::Abort{"the source failed"});
  Result<nlohmann::json> st = qmp_->execute("query-status");
  if (was_running_ && st.ok() && !json_value_or(*st, "running", false)) {
    Status resumed = qmp_->execute("cont").status();
    if (!resumed.ok()) RELIVE_LOG_WARN("resuming the source VM: {}", resumed.to_string());
  }
  progress("vm: migration rolled back; the source VM " +
           std::string(was_running_ ? "runs" : "stays paused"));
}

}  // namespace relive::migrate
