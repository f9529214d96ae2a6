#include "migrate/vm_destination_session.h"

#include <stdlib.h>

#include <cerrno>
#include <variant>

#include "common/file_util.h"
#include "common/safe_name.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;

constexpr std::chrono::milliseconds kQmpTimeout{30000};
constexpr const char* kDefaultVmRoot = "/var/lib/relive/vms";

}  // namespace

Status VmQemu::check_alive() const {
  if (process.running()) return Status::Ok();
  return Status::IoError(what + " exited: " + process.log_tail());
}

Status VmDestinationSession::make_dir(const std::string& label) {
  std::string root = o_.vm_root.empty() ? kDefaultVmRoot : o_.vm_root;
  RELIVE_RETURN_IF_ERROR(make_dirs(root));
  std::string name = check_name("VM label", label).ok() ? label : "vm";
  std::string tmpl = root + "/" + name + ".XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return PosixError("mkdtemp " + tmpl, errno);
  dir_ = tmpl;
  return Status::Ok();
}

Result<VmQemu> VmDestinationSession::start_qemu(QemuStart start) const {
  qemu::QemuLaunch l{std::move(start.argv), dir_, dir_ + "/" + start.log,
                     std::move(start.remove_unless_released)};
  RELIVE_ASSIGN_OR_RETURN(qemu::QemuProcess p, qemu::QemuProcess::start(l));
  Result<qemu::QmpClient> c = qemu::QmpClient::connect(start.socket, kQmpTimeout);
  if (!c.ok()) {
    return c.status().with_context(start.what + " did not start (" + p.log_tail() + ")");
  }
  return VmQemu{std::move(p), std::move(*c), std::move(start.what)};
}

Status VmDestinationSession::answer_begin(const Result<m::VmBeginReply>& ready) {
  if (!ready.ok()) {
    (void)link_->fail(ready.status());
    return ready.status();
  }
  outcome_.name = begin_.name;
  outcome_.strategy = m::strategy_name(begin_.strategy);
  outcome_.vm_dir = dir_;
  outcome_.vm_qmp = dir_ + "/qmp.sock";
  return link_->reply(m::Reply{*ready});
}

Status VmDestinationSession::serve(const Handler& handler) {
  return link_->serve(gate_, [&](const m::Command& c, bool* done) -> Result<m::Reply> {
    if (Status s = phase_.step(c); !s.ok())
      return refuse_command(gate_, link_->channel().peer(), c, s);
    if (const auto* a = std::get_if<m::Abort>(&c))
      return Status::Aborted("source aborted the migration: " + a->reason);
    return handler(c, done);
  });
}

Status VmDestinationSession::unexpected(const m::Command& c, std::string_view migration_kind) {
  return Status::Corruption(std::string("unexpected command ") + m::command_name(c) + " in a " +
                            std::string(migration_kind));
}

}  // namespace relive::migrate
