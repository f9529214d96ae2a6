#include "migrate/vm_destination.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/json_field.h"
#include "common/logging.h"
#include "drivers/qemu/vm_command_line.h"
#include "migrate/peer_replies.h"
#include "migrate/qemu_tls.h"
#include "migrate/vm_destination_session.h"
#include "migrate/vm_disk_targets.h"
#include "net/routed_tap.h"
#include "net/service_address.h"

namespace relive::migrate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace m = relive::migration;

// From `cont` until the VM runs: QEMU may still be loading the last device state.
constexpr milliseconds kStartTimeout{120000};

class VmIncoming {
 public:
  VmIncoming(transfer::Link* link, security::RequestGate* gate, const DestinationOptions& o,
             const m::Begin& b)
      : vm_(link, gate, o, b, DestinationFlow::kVm), begin_(vm_.begin()) {}
  // Not committed: the guard kills QEMU (vm_destination_session.h). Its directory stays.
  ~VmIncoming() = default;

  Result<DestinationOutcome> run();

 private:
  Status make_tap();
  Status start_qemu();
  Status configure();
  Result<m::VmBeginReply> listen();
  Status run_here();
  Result<m::Reply> dispatch(const m::Command& c, bool* done);

  VmDestinationSession vm_;
  const m::Begin& begin_;
  // Storage migration's images (vm_disk_targets.h); destroyed after qemu_, whose guard owns
  // them once QEMU started.
  std::optional<VmDiskTargets> disks_;
  std::optional<VmQemu> qemu_;
  // --service-address: the guest's tap here, routed at the commit; gone if the migration fails.
  std::optional<net::ServiceAddress> svc_;
  std::optional<net::RoutedTap> tap_;
};

// The tap the guest's NIC uses, with the source's MAC, before QEMU opens it.
Status VmIncoming::make_tap() {
  if (begin_.service_address.empty()) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(net::ServiceAddress a,
                          net::parse_service_address(begin_.service_address));
  std::vector<std::string> taps = qemu::tap_interfaces(begin_.vm_args);
  if (taps.size() != 1)
    return Status::InvalidArgument("a service address needs exactly one tap in the VM");
  RELIVE_ASSIGN_OR_RETURN(net::RoutedTap t,
                          net::RoutedTap::create(taps[0], begin_.vm_tap_mac, /*replace=*/false));
  tap_.emplace(std::move(t));
  svc_ = a;
  return Status::Ok();
}

Status VmIncoming::start_qemu() {
  RELIVE_RETURN_IF_ERROR(vm_.make_dir(begin_.name));
  // Every check that can refuse the disks runs before anything is created or copied.
  RELIVE_ASSIGN_OR_RETURN(
      VmDiskTargets t,
      VmDiskTargets::prepare(begin_.vm_disks, begin_.vm_shared_storage, vm_.dir()));
  disks_.emplace(std::move(t));
  RELIVE_RETURN_IF_ERROR(make_tap());
  VmDestinationSession::QemuStart start{{}, vm_.dir() + "/qmp.sock", "destination QEMU"};
  RELIVE_ASSIGN_OR_RETURN(start.argv, qemu::incoming_args(begin_.vm_args, start.socket));
  RELIVE_ASSIGN_OR_RETURN(start.argv, disks_->rewrite(std::move(start.argv)));
  start.remove_unless_released = disks_->files();
  RELIVE_ASSIGN_OR_RETURN(VmQemu q, vm_.start_qemu(std::move(start)));
  disks_->hand_over();
  qemu_.emplace(std::move(q));
  return Status::Ok();
}

// The capabilities that must match at both ends, QEMU's TLS, the multifd channel count.
Status VmIncoming::configure() {
  static const std::set<std::string> kAllowed = {"postcopy-ram", "multifd"};
  nlohmann::json caps = nlohmann::json::array();
  for (const std::string& c : begin_.vm_capabilities) {
    if (!kAllowed.count(c))
      return Status::InvalidArgument("capability " + c + " is not set on the destination");
    caps.push_back({{"capability", c}, {"state", true}});
  }
  qemu::QmpClient& qmp = qemu_->qmp;
  if (!caps.empty())
    RELIVE_RETURN_IF_ERROR(
        qmp.execute("migrate-set-capabilities", {{"capabilities", caps}}).status());
  nlohmann::json params = nlohmann::json::object();
  if (begin_.vm_multifd_channels > 0) params["multifd-channels"] = begin_.vm_multifd_channels;
  const DestinationOptions& o = vm_.options();
  if (!o.insecure) {
    RELIVE_RETURN_IF_ERROR(
        add_qemu_tls(qmp, o.tls_dir, o.node_name, vm_.dir() + "/tls", /*server=*/true));
    params["tls-creds"] = kQemuTlsObjectId;
  }
  if (!params.empty())
    RELIVE_RETURN_IF_ERROR(qmp.execute("migrate-set-parameters", params).status());
  return Status::Ok();
}

// Starts listening for the migration stream on a port of QEMU's choosing: begin's answer.
Result<m::VmBeginReply> VmIncoming::listen() {
  qemu::QmpClient& qmp = qemu_->qmp;
  RELIVE_RETURN_IF_ERROR(qmp.execute("migrate-incoming", {{"uri", "tcp:0.0.0.0:0"}}).status());
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json info, qmp.execute("query-migrate"));
  Result<uint16_t> port = qemu_listening_port(info);
  if (!port.ok())
    return Status::IoError("destination QEMU reports no listening port: " + info.dump());
  uint16_t nbd_port = 0;
  if (disks_->copies()) {
    std::string creds = vm_.options().insecure ? "" : kQemuTlsObjectId;
    RELIVE_ASSIGN_OR_RETURN(nbd_port, disks_->export_all(qmp, creds));
  }
  return m::VmBeginReply{*port, qemu_->process.pid(), vm_.dir(), nbd_port};
}

// `cont` while QEMU still loads only marks it to start once loaded; wait until it runs.
Status VmIncoming::run_here() {
  auto start = Clock::now();
  // The source's mirrors ended in sync: no one writes through the exports any more.
  if (disks_->copies()) RELIVE_RETURN_IF_ERROR(VmDiskTargets::stop_exports(qemu_->qmp));
  RELIVE_RETURN_IF_ERROR(qemu_->qmp.execute("cont").status());
  // The guest is down until it runs here: look again soon, then less often.
  for (milliseconds pause{1};; pause = std::min(pause * 2, milliseconds(10))) {
    RELIVE_RETURN_IF_ERROR(qemu_->check_alive());
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json st, qemu_->qmp.execute("query-status"));
    if (json_value_or(st, "running", false)) break;
    std::string status = json_value_or(st, "status", "");
    if (status != "inmigrate" && status != "paused" && status != "prelaunch")
      return Status::IoError("destination VM is " + status + " instead of running");
    if (Clock::now() - start > kStartTimeout)
      return Status::IoError("destination VM still " + status + " after the commit");
    std::this_thread::sleep_for(pause);
  }
  vm_.outcome().restore_ms = ms_since(start);
  RELIVE_RETURN_IF_ERROR(qemu_->process.release());
  if (tap_) {
    // The VM runs here now: clients are told with a gratuitous ARP.
    Status routed = tap_->route(*svc_);
    tap_->keep();
    if (!routed.ok()) RELIVE_LOG_WARN("routing the service address: {}", routed.to_string());
  }
  return Status::Ok();
}

// Every command after the phase check (vm_destination_session.h).
Result<m::Reply> VmIncoming::dispatch(const m::Command& c, bool* done) {
  if (const auto* p = std::get_if<m::VmProgress>(&c)) {
    RELIVE_RETURN_IF_ERROR(qemu_->check_alive());
    RELIVE_LOG_DEBUG("VM migration progress: {}", p->json);
    (void)p;  // when debug logging is compiled out
    return m::Reply{};
  }
  if (std::holds_alternative<m::Commit>(c)) {
    RELIVE_RETURN_IF_ERROR(run_here());
    *done = true;
    const DestinationOutcome& o = vm_.outcome();
    return m::Reply{m::OutcomeReply{o.root_pid, o.restore_ms, 0}};
  }
  return VmDestinationSession::unexpected(c, "VM migration");
}

Result<DestinationOutcome> VmIncoming::run() {
  Status ready = start_qemu();
  if (ready.ok()) ready = configure();
  Result<m::VmBeginReply> begun = ready.ok() ? listen() : Result<m::VmBeginReply>(ready);
  RELIVE_RETURN_IF_ERROR(vm_.answer_begin(begun));
  vm_.outcome().root_pid = vm_.outcome().init_pid = qemu_->process.pid();
  RELIVE_RETURN_IF_ERROR(
      vm_.serve([this](const m::Command& c, bool* done) { return dispatch(c, done); }));
  return vm_.outcome();
}

}  // namespace

Result<DestinationOutcome> serve_vm_migration(transfer::Link* link, security::RequestGate* gate,
                                              const DestinationOptions& options,
                                              const m::Begin& begin) {
  VmIncoming in(link, gate, options, begin);
  return in.run();
}

}  // namespace relive::migrate
