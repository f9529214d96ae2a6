// VmSourceSession: the source's side of one VM migration, shared by its two strategies (QEMU's
// own stream, vm_source.cc; log shipping, vm_log_source.cc): the source QEMU found through its
// monitor, the command line the destination will start from, and the link to the destination's
// relived. Until settle() (the VM handed over, or the source past the point where it could take
// it back) a session that ends rolls the migration back: the strategy's own undo runs (see
// rollback()), the destination is told (migrate.abort), and the VM runs again if it ran before.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "drivers/qemu/qmp_client.h"
#include "relive/migrate.h"
#include "transfer/link.h"
#include "wire/migration_types.h"

namespace relive::migrate {

class VmSourceSession {
 public:
  // `options` must outlive the session.
  explicit VmSourceSession(const MigrateOptions& options) : o_(options) {}
  ~VmSourceSession() { rollback(); }
  VmSourceSession(const VmSourceSession&) = delete;
  VmSourceSession& operator=(const VmSourceSession&) = delete;

  // Connects to the monitor at options.vm_qmp and reads the QEMU at its other end: its whole
  // command line, the part of it a destination starts from (qemu::migratable_args), and its
  // run state.
  Status attach();
  // Opens the link to the destination's relived and sends `begin`, its kind, name, source node
  // and QEMU command line filled in here; the destination's typed reply.
  Result<migration::Reply> begin(migration::Begin begin);

  // After attach().
  qemu::QmpClient& qmp() { return *qmp_; }
  pid_t qemu_pid() const { return qmp_->peer_pid(); }
  const std::vector<std::string>& argv() const { return argv_; }
  const std::vector<std::string>& args() const { return args_; }
  bool was_running() const { return was_running_; }
  const std::string& run_state() const { return run_state_; }  // query-status's "status"
  // After begin().
  transfer::Link& link() { return *link_; }

  void progress(const std::string& line) const {
    if (o_.progress) o_.progress(line);
  }

  // From here on the session rolls nothing back: the destination has the VM, or the source can
  // no longer take it back (the error then says how things stand).
  void settle() { settled_ = true; }
  bool settled() const { return settled_; }
  // Unless settled or never attached: runs `undo` (the strategy's part: cancel QEMU's
  // migration, take back the settings it made), tells the destination, and lets the VM run
  // again if it ran before. Once; the destructor calls it with no `undo`.
  void rollback(const std::function<void()>& undo = {});

 private:
  const MigrateOptions& o_;
  std::optional<qemu::QmpClient> qmp_;
  std::unique_ptr<transfer::Link> link_;
  std::vector<std::string> argv_, args_;
  std::string run_state_;
  bool was_running_ = false;
  bool settled_ = false;
};

}  // namespace relive::migrate
