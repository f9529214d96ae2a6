// VmDestinationSession: relived's side of one incoming VM migration, shared by its two strategies
// (QEMU's own stream, vm_destination.cc; log shipping, vm_log_destination.cc): the VM's
// directory, the QEMUs started in it with their monitors, and the conversation with the source,
// begin answered and then every command checked against the flow's DestinationPhase (an abort
// ends the session; anything else goes to the strategy's handler).
//
// Teardown is RAII and needs no call: every QEMU the strategy still holds when the session ends
// without a commit is killed by its guard (VmQemu, drivers/qemu/qemu_process.h), and the source,
// which never stopped being primary, carries on. The directory stays, for its qemu.log.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/qemu/qemu_process.h"
#include "drivers/qemu/qmp_client.h"
#include "migrate/destination.h"
#include "migrate/destination_phase.h"
#include "wire/migration_types.h"

namespace relive::migrate {

// A QEMU started here under its guard, and its monitor. Destroying it closes the monitor, then
// kills QEMU unless it was released.
struct VmQemu {
  qemu::QemuProcess process;
  qemu::QmpClient qmp;
  std::string what;  // how errors name it: "destination QEMU", "replaying QEMU"

  // Ok while QEMU runs; otherwise an IoError naming it, with the end of its log.
  Status check_alive() const;
};

class VmDestinationSession {
 public:
  // `link`, `gate` and `options` must outlive the session.
  VmDestinationSession(transfer::Link* link, security::RequestGate* gate,
                       const DestinationOptions& options, const migration::Begin& begin,
                       DestinationFlow flow)
      : link_(link), gate_(gate), o_(options), begin_(begin), phase_(flow) {}
  VmDestinationSession(const VmDestinationSession&) = delete;
  VmDestinationSession& operator=(const VmDestinationSession&) = delete;

  const migration::Begin& begin() const { return begin_; }
  const DestinationOptions& options() const { return o_; }
  transfer::Link& link() { return *link_; }

  // Makes the VM's directory, <vm_root>/<label>.XXXXXX; a label that is not a safe name
  // (common/safe_name.h) becomes "vm".
  Status make_dir(const std::string& label);
  // After make_dir().
  const std::string& dir() const { return dir_; }

  struct QemuStart {
    std::vector<std::string> argv;
    std::string socket;            // the QMP socket argv opens
    std::string what;              // see VmQemu::what
    std::string log = "qemu.log";  // QEMU's output, appended, in dir()
    // Deleted by QEMU's guard when QEMU dies unreleased (qemu::QemuLaunch).
    std::vector<std::string> remove_unless_released = {};
  };
  // Starts QEMU in dir() under a guard and connects to its monitor; an error carries the end
  // of QEMU's log.
  Result<VmQemu> start_qemu(QemuStart start) const;

  // Answers begin: with `ready`'s error (then returned), or with its reply. The outcome's name,
  // strategy, vm_dir and vm_qmp (dir()/qmp.sock) are filled in.
  Status answer_begin(const Result<migration::VmBeginReply>& ready);
  // Serves the source's commands until `handler` sets *done: each one passes the phase first
  // (out of order: refused and audited), an abort ends the session with its reason, and the
  // handler's error goes back to the source.
  using Handler = std::function<Result<migration::Reply>(const migration::Command&, bool* done)>;
  Status serve(const Handler& handler);
  // The error for a command the flow admits and the strategy has no use for.
  static Status unexpected(const migration::Command& c, std::string_view migration_kind);

  DestinationOutcome& outcome() { return outcome_; }

 private:
  transfer::Link* link_;
  security::RequestGate* gate_;
  const DestinationOptions& o_;
  migration::Begin begin_;
  DestinationPhase phase_;
  std::string dir_;
  DestinationOutcome outcome_;
};

}  // namespace relive::migrate
