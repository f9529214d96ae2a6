#include "migrate/vm_destination.h"

#include <fmt/format.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/json_field.h"
#include "common/logging.h"
#include "drivers/qemu/qemu_process.h"
#include "drivers/qemu/qmp_client.h"
#include "drivers/qemu/vm_command_line.h"
#include "migrate/destination_phase.h"
#include "migrate/peer_replies.h"
#include "migrate/qemu_tls.h"
#include "net/routed_tap.h"
#include "net/service_address.h"

namespace relive::migrate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace m = relive::migration;

constexpr milliseconds kQmpTimeout{30000};
// From `cont` until the VM runs: QEMU may still be loading the last device state.
constexpr milliseconds kStartTimeout{120000};

// A directory name from the source's label: [A-Za-z0-9._-] or "vm".
std::string safe_label(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return "vm";
  for (char c : name)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return "vm";
  return name;
}

class VmIncoming {
 public:
  VmIncoming(transfer::Link* link, security::RequestGate* gate, const DestinationOptions& o,
             const m::Begin& b)
      : link_(link), gate_(gate), o_(o), begin_(b) {}
  // Not committed: the guard's destructor kills QEMU. Its directory (qemu.log) stays.
  ~VmIncoming() = default;

  Result<DestinationOutcome> run();

 private:
  Status make_dir();
  Status make_tap();
  Status start_qemu();
  Status configure();
  Result<uint16_t> listen();
  Status check_alive() const;
  Status run_here();
  Result<m::Reply> dispatch(const m::Command& c, bool* done);

  transfer::Link* link_;
  security::RequestGate* gate_;
  const DestinationOptions& o_;
  m::Begin begin_;
  std::string dir_;
  std::optional<qemu::QemuProcess> qemu_;
  std::optional<qemu::QmpClient> qmp_;
  // --service-address: the guest's tap here, routed at the commit; gone if the migration fails.
  std::optional<net::ServiceAddress> svc_;
  std::optional<net::RoutedTap> tap_;
  DestinationPhase phase_{DestinationFlow::kVm};
  DestinationOutcome outcome_;
};

Status VmIncoming::make_dir() {
  std::string root = o_.vm_root.empty() ? "/var/lib/relive/vms" : o_.vm_root;
  RELIVE_RETURN_IF_ERROR(make_dirs(root));
  std::string tmpl = root + "/" + safe_label(begin_.name) + ".XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return PosixError("mkdtemp " + tmpl, errno);
  dir_ = tmpl;
  return Status::Ok();
}

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
  RELIVE_RETURN_IF_ERROR(make_dir());
  RELIVE_RETURN_IF_ERROR(make_tap());
  std::string socket = dir_ + "/qmp.sock";
  qemu::QemuLaunch l;
  RELIVE_ASSIGN_OR_RETURN(l.argv, qemu::incoming_args(begin_.vm_args, socket));
  l.cwd = dir_;
  l.log_file = dir_ + "/qemu.log";
  RELIVE_ASSIGN_OR_RETURN(qemu::QemuProcess p, qemu::QemuProcess::start(l));
  qemu_.emplace(std::move(p));
  Result<qemu::QmpClient> c = qemu::QmpClient::connect(socket, kQmpTimeout);
  if (!c.ok()) {
    return c.status().with_context(
        fmt::format("destination QEMU did not start ({})", qemu_->log_tail()));
  }
  qmp_.emplace(std::move(*c));
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
  if (!caps.empty())
    RELIVE_RETURN_IF_ERROR(
        qmp_->execute("migrate-set-capabilities", {{"capabilities", caps}}).status());
  nlohmann::json params = nlohmann::json::object();
  if (begin_.vm_multifd_channels > 0) params["multifd-channels"] = begin_.vm_multifd_channels;
  if (!o_.insecure) {
    std::string tls = dir_ + "/tls";
    RELIVE_RETURN_IF_ERROR(make_qemu_tls_dir(o_.tls_dir, o_.node_name, tls, /*server=*/true));
    RELIVE_RETURN_IF_ERROR(qmp_->execute("object-add", qemu_tls_object(tls, true)).status());
    params["tls-creds"] = kQemuTlsObjectId;
  }
  if (!params.empty())
    RELIVE_RETURN_IF_ERROR(qmp_->execute("migrate-set-parameters", params).status());
  return Status::Ok();
}

// Starts listening for the migration stream on a port of QEMU's choosing.
Result<uint16_t> VmIncoming::listen() {
  RELIVE_RETURN_IF_ERROR(qmp_->execute("migrate-incoming", {{"uri", "tcp:0.0.0.0:0"}}).status());
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json info, qmp_->execute("query-migrate"));
  Result<uint16_t> port = qemu_listening_port(info);
  if (port.ok()) return port;
  return Status::IoError("destination QEMU reports no listening port: " + info.dump());
}

Status VmIncoming::check_alive() const {
  if (qemu_->running()) return Status::Ok();
  return Status::IoError("destination QEMU exited: " + qemu_->log_tail());
}

// `cont` while QEMU still loads only marks it to start once loaded; wait until it runs.
Status VmIncoming::run_here() {
  auto start = Clock::now();
  RELIVE_RETURN_IF_ERROR(qmp_->execute("cont").status());
  for (;;) {
    RELIVE_RETURN_IF_ERROR(check_alive());
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json st, qmp_->execute("query-status"));
    if (json_value_or(st, "running", false)) break;
    std::string status = json_value_or(st, "status", "");
    if (status != "inmigrate" && status != "paused" && status != "prelaunch")
      return Status::IoError("destination VM is " + status + " instead of running");
    if (Clock::now() - start > kStartTimeout)
      return Status::IoError("destination VM still " + status + " after the commit");
    std::this_thread::sleep_for(milliseconds(10));
  }
  outcome_.restore_ms = ms_since(start);
  RELIVE_RETURN_IF_ERROR(qemu_->release());
  if (tap_) {
    // The VM runs here now: clients are told with a gratuitous ARP.
    Status routed = tap_->route(*svc_);
    tap_->keep();
    if (!routed.ok()) RELIVE_LOG_WARN("routing the service address: {}", routed.to_string());
  }
  return Status::Ok();
}

Result<m::Reply> VmIncoming::dispatch(const m::Command& c, bool* done) {
  if (Status s = phase_.step(c); !s.ok())
    return refuse_command(gate_, link_->channel().peer(), c, s);
  if (const auto* p = std::get_if<m::VmProgress>(&c)) {
    RELIVE_RETURN_IF_ERROR(check_alive());
    RELIVE_LOG_DEBUG("VM migration progress: {}", p->json);
    (void)p;  // when debug logging is compiled out
    return m::Reply{};
  }
  if (std::holds_alternative<m::Commit>(c)) {
    RELIVE_RETURN_IF_ERROR(run_here());
    *done = true;
    return m::Reply{m::OutcomeReply{outcome_.root_pid, outcome_.restore_ms, 0}};
  }
  if (const auto* a = std::get_if<m::Abort>(&c))
    return Status::Aborted("source aborted the migration: " + a->reason);
  return Status::Corruption(std::string("unexpected command ") + m::command_name(c) +
                            " in a VM migration");
}

Result<DestinationOutcome> VmIncoming::run() {
  Status ready = start_qemu();
  if (ready.ok()) ready = configure();
  Result<uint16_t> port = ready.ok() ? listen() : Result<uint16_t>(ready);
  if (!port.ok()) {
    (void)link_->fail(port.status());
    return port.status();
  }
  outcome_.name = begin_.name;
  outcome_.strategy = m::strategy_name(begin_.strategy);
  outcome_.root_pid = qemu_->pid();
  outcome_.init_pid = qemu_->pid();
  outcome_.vm_dir = dir_;
  outcome_.vm_qmp = dir_ + "/qmp.sock";
  RELIVE_RETURN_IF_ERROR(link_->reply(m::Reply{m::VmBeginReply{*port, qemu_->pid(), dir_}}));
  RELIVE_RETURN_IF_ERROR(
      link_->serve(gate_, [this](const m::Command& c, bool* done) { return dispatch(c, done); }));
  return outcome_;
}

}  // namespace

Result<DestinationOutcome> serve_vm_migration(transfer::Link* link, security::RequestGate* gate,
                                              const DestinationOptions& options,
                                              const m::Begin& begin) {
  VmIncoming in(link, gate, options, begin);
  return in.run();
}

}  // namespace relive::migrate
