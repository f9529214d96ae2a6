#include "migrate/vm_source.h"

#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "common/json_field.h"
#include "common/logging.h"
#include "common/work_dir.h"
#include "drivers/qemu/vm_command_line.h"
#include "migrate/image_dir.h"
#include "migrate/peer_replies.h"
#include "migrate/qemu_tls.h"
#include "migrate/vm_convergence.h"
#include "migrate/vm_disk_mirror.h"
#include "migrate/vm_disk_spec.h"
#include "migrate/vm_log_source.h"
#include "migrate/vm_source_session.h"
#include "net/routed_tap.h"
#include "net/service_address.h"

namespace relive::migrate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace m = relive::migration;

constexpr milliseconds kPoll{200};        // longest wait for an event between queries
constexpr milliseconds kKeepalive{2000};  // between progress reports to the destination
constexpr milliseconds kCancelTimeout{30000};
// The source is stopped: the mirrors copy the last writes and end (the downtime's share).
constexpr milliseconds kMirrorCompleteTimeout{120000};

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// query-migrate's ram.<key>; 0 when QEMU did not say (or said something else).
uint64_t ram_u64(const nlohmann::json& info, const char* key) {
  Result<nlohmann::json> ram = json_field<nlohmann::json>(info, "ram", "query-migrate");
  if (!ram.ok()) return 0;
  Result<uint64_t> v = json_field<uint64_t>(*ram, key, "query-migrate");
  return v.ok() ? *v : 0;
}

double ram_double(const nlohmann::json& info, const char* key) {
  Result<nlohmann::json> ram = json_field<nlohmann::json>(info, "ram", "query-migrate");
  if (!ram.ok()) return 0;
  Result<double> v = json_field<double>(*ram, key, "query-migrate");
  return v.ok() ? *v : 0;
}

bool terminal_failure(const std::string& status) {
  return status == "failed" || status == "cancelled";
}

class VmSource {
 public:
  explicit VmSource(const MigrateOptions& o)
      : o_(o), start_(Clock::now()), convergence_(o.max_rounds, o.max_time), vm_(o) {}
  ~VmSource() { rollback(); }
  VmSource(const VmSource&) = delete;
  VmSource& operator=(const VmSource&) = delete;

  Result<MigrateReport> run();

 private:
  Status open();
  Status begin_at_destination();
  Status configure();
  Status set_capabilities(bool state);
  Status find_disks();
  Status mirror_disks();
  Status start();
  Status watch();
  Status on_info(const nlohmann::json& info, bool* finished);
  Status start_postcopy(const std::string& why);
  Status commit();
  Result<bool> take_events(milliseconds wait);
  void finish_report(const nlohmann::json& info);
  void rollback();
  void cancel_migration();

  const MigrateOptions& o_;
  Clock::time_point start_, migrate_start_;
  VmConvergence convergence_;
  std::optional<WorkDir> work_;  // the client's TLS directory
  VmSourceSession vm_;
  std::vector<std::string> capabilities_;  // enabled here by us (and at the destination)
  std::vector<migration::VmDisk> disks_;   // what the destination creates (or checks, shared)
  std::optional<DiskMirrors> mirrors_;     // storage migration: the disks' mirrors
  std::string tls_hostname_;               // the destination's certificate name
  bool postcopy_ = false;                  // postcopy-ram enabled
  bool tls_added_ = false;
  bool migrating_ = false;           // `migrate` issued, outcome not yet known
  bool postcopy_started_ = false;    // migrate-start-postcopy issued
  bool point_of_no_return_ = false;  // post-copy active: the source no longer holds the VM
  bool committed_ = false;
  double stop_time_ = 0;  // wall clock of the source VM's STOP event
  int last_pass_ = 0;
  uint16_t dest_port_ = 0;
  uint16_t nbd_port_ = 0;  // the destination's NBD server (storage migration)
  // --service-address: the address the guest holds, reached through this host's tap.
  std::optional<net::ServiceAddress> svc_;
  std::string tap_, tap_mac_;
  MigrateReport report_;
};

// The source VM: its monitor, its state, its command line.
Status VmSource::open() {
  if (o_.strategy != "precopy" && o_.strategy != "postcopy" && o_.strategy != "auto")
    return Status::InvalidArgument(
        "VMs migrate with precopy, postcopy, auto or log-shipping, not " + o_.strategy);
  RELIVE_RETURN_IF_ERROR(vm_.attach());
  const std::string& status = vm_.run_state();
  if (!vm_.was_running() && status != "paused")
    return Status::InvalidArgument("the VM is " + status + ", neither running nor paused");
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json mig, vm_.qmp().execute("query-migrate"));
  std::string ms = json_value_or(mig, "status", "none");
  if (ms != "none" && ms != "completed" && ms != "failed" && ms != "cancelled")
    return Status::InvalidArgument("the VM is already migrating (" + ms + ")");
  postcopy_ = o_.strategy != "precopy";
  if (postcopy_) capabilities_.push_back("postcopy-ram");
  if (o_.vm_multifd_channels > 0) capabilities_.push_back("multifd");
  if (!o_.service_address.empty()) {
    RELIVE_ASSIGN_OR_RETURN(net::ServiceAddress a, net::parse_service_address(o_.service_address));
    std::vector<std::string> taps = qemu::tap_interfaces(vm_.args());
    if (taps.size() != 1) {
      return Status::InvalidArgument(fmt::format(
          "--service-address moves the address a VM holds through its tap: the VM needs exactly "
          "one tap network backend (-netdev tap,ifname=NAME), it has {}",
          taps.size()));
    }
    RELIVE_ASSIGN_OR_RETURN(tap_mac_, net::interface_mac(taps[0]));
    tap_ = taps[0];
    svc_ = a;
  }
  RELIVE_RETURN_IF_ERROR(find_disks());
  vm_.progress(fmt::format("vm: QEMU {} pid {}, {}", vm_.qmp().version(), vm_.qemu_pid(), status));
  return Status::Ok();
}

// The disks: copied (the default), or left on storage both hosts share.
Status VmSource::find_disks() {
  bool copy = !o_.vm_shared_storage;
  RELIVE_ASSIGN_OR_RETURN(disks_, describe_vm_disks(vm_.qmp(), copy));
  for (const migration::VmDisk& d : disks_) {
    vm_.progress(fmt::format("vm: disk {} {} {} bytes{}: {}", d.device, d.format, d.virtual_size,
                             d.backing_file.empty() ? "" : " on base " + d.backing_file,
                             copy ? "copied" : "shared storage"));
  }
  return Status::Ok();
}

// Asks the destination's relived for a receiving QEMU; its answer names the stream's port.
Status VmSource::begin_at_destination() {
  m::Begin b;
  b.strategy = postcopy_ ? m::Strategy::kPostcopy : m::Strategy::kPrecopy;
  b.vm_capabilities = capabilities_;
  b.service_address = svc_ ? svc_->cidr : "";
  b.vm_tap_mac = tap_mac_;
  b.vm_multifd_channels = static_cast<uint8_t>(std::min(o_.vm_multifd_channels, 255));
  b.vm_disks = disks_;
  b.vm_shared_storage = o_.vm_shared_storage;
  RELIVE_ASSIGN_OR_RETURN(m::Reply begun, vm_.begin(std::move(b)));
  RELIVE_ASSIGN_OR_RETURN(m::VmBeginReply reply, vm_begin_reply(begun));
  dest_port_ = reply.port;
  nbd_port_ = reply.nbd_port;
  if (!o_.vm_shared_storage && !disks_.empty() && nbd_port_ == 0) {
    return Status::Unsupported(
        "the destination exports no disks for storage migration (a relived without it?); "
        "use --shared-storage if both hosts see the same images");
  }
  report_.destination_pid = reply.pid;
  report_.vm_dir = reply.dir;
  vm_.progress(fmt::format("vm: destination QEMU pid {} listens on port {}",
                           report_.destination_pid, dest_port_));
  return Status::Ok();
}

Status VmSource::set_capabilities(bool state) {
  nlohmann::json caps = nlohmann::json::array();
  if (state) caps.push_back({{"capability", "events"}, {"state", true}});
  for (const std::string& c : capabilities_) caps.push_back({{"capability", c}, {"state", state}});
  if (o_.vm_xbzrle) caps.push_back({{"capability", "xbzrle"}, {"state", state}});
  if (caps.empty()) return Status::Ok();
  return vm_.qmp().execute("migrate-set-capabilities", {{"capabilities", caps}}).status();
}

// Capabilities, downtime limit, bandwidth, QEMU's TLS.
Status VmSource::configure() {
  RELIVE_RETURN_IF_ERROR(set_capabilities(true));
  nlohmann::json p = {{"downtime-limit", o_.vm_downtime_limit_ms}};
  if (o_.max_bandwidth > 0) p["max-bandwidth"] = o_.max_bandwidth;
  if (o_.vm_multifd_channels > 0) p["multifd-channels"] = o_.vm_multifd_channels;
  if (!o_.insecure) {
    RELIVE_ASSIGN_OR_RETURN(WorkDir w, WorkDir::create(default_image_root(o_.work_dir), "vm-tls"));
    work_.emplace(std::move(w));
    std::string dir = work_->path() + "/tls";
    RELIVE_RETURN_IF_ERROR(
        add_qemu_tls(vm_.qmp(), o_.tls_dir, o_.node_name, dir, /*server=*/false));
    tls_added_ = true;
    p["tls-creds"] = kQemuTlsObjectId;
    // The destination's certificate must name it, as relive's own channel checked.
    std::string peer = !o_.peer_name.empty() ? o_.peer_name : vm_.link().channel().peer().dns_name;
    if (peer.empty()) return Status::InvalidArgument("the destination's certificate has no name");
    p["tls-hostname"] = peer;
    tls_hostname_ = peer;
  }
  return vm_.qmp().execute("migrate-set-parameters", p).status();
}

// Storage migration: every disk mirrored into the destination's export and in sync before
// memory migrates (vm_disk_mirror.h). The destination hears from us meanwhile (keepalive).
Status VmSource::mirror_disks() {
  if (o_.vm_shared_storage || disks_.empty()) return Status::Ok();
  mirrors_.emplace(&vm_.qmp(), disks_);
  NbdTarget t{o_.to_host, nbd_port_, o_.insecure ? "" : kQemuTlsObjectId, tls_hostname_};
  RELIVE_RETURN_IF_ERROR(mirrors_->start(t));
  vm_.progress(
      fmt::format("vm: mirroring {} disk(s) to {}:{}", disks_.size(), o_.to_host, nbd_port_));
  auto last_keepalive = Clock::now();
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(bool ready, mirrors_->all_ready());
    if (ready) break;
    RELIVE_RETURN_IF_ERROR(take_events(kPoll).status());
    if (Clock::now() - last_keepalive > kKeepalive) {
      RELIVE_ASSIGN_OR_RETURN(nlohmann::json jobs, vm_.qmp().execute("query-jobs"));
      RELIVE_RETURN_IF_ERROR(vm_.link().call(m::VmProgress{jobs.dump()}).status());
      last_keepalive = Clock::now();
    }
  }
  vm_.progress("vm: disks in sync");
  return Status::Ok();
}

Status VmSource::start() {
  std::string uri = fmt::format("tcp:{}:{}", o_.to_host, dest_port_);
  migrate_start_ = Clock::now();
  migrating_ = true;
  RELIVE_RETURN_IF_ERROR(vm_.qmp().execute("migrate", {{"uri", uri}}).status());
  vm_.progress(fmt::format("vm: migrating to {} ({}{})", uri, o_.strategy,
                           o_.insecure ? ", INSECURE stream" : ", TLS"));
  if (o_.strategy == "postcopy") return start_postcopy("requested");
  return Status::Ok();
}

Status VmSource::start_postcopy(const std::string& why) {
  RELIVE_RETURN_IF_ERROR(vm_.qmp().execute("migrate-start-postcopy").status());
  postcopy_started_ = true;
  report_.strategy = "postcopy";
  if (o_.strategy == "auto") report_.reason = "pre-copy did not converge: " + why;
  vm_.progress("vm: switching to post-copy (" + why + ")");
  return Status::Ok();
}

// Consumes the events that arrived (waiting up to `wait` for the first): the source VM's STOP
// starts the downtime. Events that came in with a command's answer are already queued. True when
// there was at least one.
Result<bool> VmSource::take_events(milliseconds wait) {
  for (bool any = false;; any = true) {
    RELIVE_ASSIGN_OR_RETURN(std::optional<qemu::QmpEvent> ev, vm_.qmp().next_event(wait));
    if (!ev) return any;
    if (ev->name == "STOP" && stop_time_ == 0) stop_time_ = ev->timestamp;
    wait = milliseconds(0);
  }
}

Status VmSource::watch() {
  auto last_keepalive = Clock::now();
  nlohmann::json info;
  // Events that came in with an answer (STOP, MIGRATION's next status) may announce a state
  // newer than the answer: then the next look comes at once, not after waiting for an event
  // already consumed. The source VM is stopped meanwhile: every millisecond here is downtime.
  for (bool finished = false, look_now = false; !finished;) {
    if (!look_now) RELIVE_RETURN_IF_ERROR(take_events(kPoll).status());
    RELIVE_ASSIGN_OR_RETURN(info, vm_.qmp().execute("query-migrate"));
    // The answer may have brought the STOP that precedes the state it reports.
    RELIVE_ASSIGN_OR_RETURN(look_now, take_events(milliseconds(0)));
    RELIVE_RETURN_IF_ERROR(on_info(info, &finished));
    if (!finished && !committed_ && Clock::now() - last_keepalive > kKeepalive) {
      RELIVE_RETURN_IF_ERROR(vm_.link().call(m::VmProgress{info.dump()}).status());
      last_keepalive = Clock::now();
    }
  }
  return Status::Ok();
}

Status VmSource::on_info(const nlohmann::json& info, bool* finished) {
  std::string status = json_value_or(info, "status", "");
  int pass = static_cast<int>(ram_u64(info, "dirty-sync-count"));
  if (pass != last_pass_) {
    last_pass_ = pass;
    vm_.progress(fmt::format("vm: pass {} remaining={} dirty_pages_rate={:.0f} mbps={:.1f}", pass,
                             ram_u64(info, "remaining"), ram_double(info, "dirty-pages-rate"),
                             ram_double(info, "mbps")));
  }
  if (terminal_failure(status))
    return Status::IoError("QEMU's migration " + status + ": " +
                           json_value_or(info, "error-desc", ""));
  if (status.starts_with("postcopy-") && status != "postcopy-active")
    return Status::IoError("post-copy interrupted (" + status + ")");
  if (status == "postcopy-active" && !committed_) {
    point_of_no_return_ = true;
    return commit();
  }
  if (status == "completed") {
    finish_report(info);
    *finished = true;
    return committed_ ? Status::Ok() : commit();
  }
  if (status == "active" && o_.strategy == "auto" && !postcopy_started_) {
    VmRamSample s{pass, ram_u64(info, "remaining"), ram_double(info, "dirty-pages-rate"),
                  ram_u64(info, "page-size"), ram_double(info, "mbps")};
    if (s.page_size == 0) s.page_size = 4096;
    auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - migrate_start_);
    std::string why = convergence_.observe(s, elapsed);
    if (!why.empty()) return start_postcopy(why);
  }
  return Status::Ok();
}

// The source VM is stopped (pre-copy completed, or post-copy began): the destination may run.
// Once migrate.commit is sent and its answer lost, the source stays paused (never two VMs).
Status VmSource::commit() {
  // Where the downtime goes: the stop noticed, the disks' last writes, the destination's start.
  auto since_stop = [this] { return stop_time_ > 0 ? (wall_seconds() - stop_time_) * 1000 : 0.0; };
  report_.vm["stop_noticed_ms"] = since_stop();
  if (mirrors_) {
    // The source is stopped: the mirrors take the last writes and end, the destination's
    // images now equal the disks (nothing is committed until they do).
    RELIVE_RETURN_IF_ERROR(mirrors_->complete(kMirrorCompleteTimeout));
    report_.disks = mirrors_->reports();
    report_.vm["disks_done_ms"] = since_stop();
  }
  vm_.progress("vm: commit");
  Status sent = vm_.link().send(m::Commit{});
  Result<m::Reply> acked = sent.ok() ? vm_.link().wait_reply() : Result<m::Reply>(sent);
  if (!acked.ok()) {
    vm_.settle();
    return Status::Aborted(fmt::format(
        "the commit's answer was lost ({}); the destination may be running the VM, so the source "
        "VM is left paused; check the destination before resuming (cont) or quitting it",
        acked.status().to_string()));
  }
  committed_ = true;
  // Committed: a reply we cannot read only loses the restore time from the report.
  Result<m::OutcomeReply> reply =
      reply_as<m::OutcomeReply>(*acked, "the VM destination's commit reply");
  if (reply.ok())
    report_.restore_ms = reply->restore_ms;
  else
    RELIVE_LOG_WARN("commit acknowledged: {}", reply.status().to_string());
  if (stop_time_ > 0) report_.downtime_ms = (wall_seconds() - stop_time_) * 1000;
  return Status::Ok();
}

void VmSource::finish_report(const nlohmann::json& info) {
  report_.bytes_total = ram_u64(info, "transferred");
  for (const char* phase : {"precopy", "downtime", "postcopy"}) {
    uint64_t n = ram_u64(info, (std::string(phase) + "-bytes").c_str());
    if (n > 0) report_.bytes_by_phase[phase] = n;
  }
  report_.rounds = static_cast<int>(ram_u64(info, "dirty-sync-count"));
  const std::pair<const char*, const char*> figures[] = {{"downtime", "qemu_downtime_ms"},
                                                         {"total-time", "qemu_total_ms"},
                                                         {"setup-time", "qemu_setup_ms"}};
  for (const auto& [key, name] : figures) {
    Result<double> v = json_field<double>(info, key, "query-migrate");
    if (v.ok()) report_.vm[name] = *v;
  }
  report_.vm["mbps"] = ram_double(info, "mbps");
  report_.vm["postcopy_requests"] = static_cast<double>(ram_u64(info, "postcopy-requests"));
}

Result<MigrateReport> VmSource::run() {
  report_.strategy = o_.strategy == "postcopy" ? "postcopy" : "precopy";
  report_.reason = o_.strategy == "auto" ? "pre-copy converged" : "requested";
  RELIVE_RETURN_IF_ERROR(open());
  RELIVE_RETURN_IF_ERROR(begin_at_destination());
  RELIVE_RETURN_IF_ERROR(configure());
  RELIVE_RETURN_IF_ERROR(mirror_disks());
  RELIVE_RETURN_IF_ERROR(start());
  Status watched = watch();
  if (!watched.ok() && point_of_no_return_ && !vm_.settled()) {
    vm_.settle();
    return watched.with_context(
        "post-copy had begun: the source VM no longer holds all of its memory and cannot resume");
  }
  RELIVE_RETURN_IF_ERROR(watched);
  vm_.settle();
  migrating_ = false;
  report_.total_ms = ms_between(start_, Clock::now());
  // The destination routes and announces the service address now: stop answering for it here.
  if (svc_) {
    Status gone = net::unroute(*svc_, tap_);
    if (!gone.ok()) RELIVE_LOG_WARN("removing the service address's route: {}", gone.to_string());
  }
  // The VM runs at the destination: end the source QEMU.
  Status quit = vm_.qmp().execute("quit").status();
  if (!quit.ok()) RELIVE_LOG_WARN("quitting the source QEMU: {}", quit.to_string());
  return report_;
}

void VmSource::cancel_migration() {
  (void)vm_.qmp().execute("migrate_cancel");
  auto deadline = Clock::now() + kCancelTimeout;
  while (Clock::now() < deadline) {
    Result<nlohmann::json> info = vm_.qmp().execute("query-migrate");
    if (!info.ok()) return;
    std::string status = info->value("status", "");
    if (terminal_failure(status) || status == "completed" || status == "none") return;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// Not switched over: the migration is cancelled and QEMU's settings undone; the session then
// tells the destination and lets the VM run again if it ran before.
void VmSource::rollback() {
  vm_.rollback([this] {
    if (migrating_) cancel_migration();
    // The source runs on its own disks as it always did; the NBD nodes use the TLS object.
    if (mirrors_) mirrors_->abort();
    if (tls_added_) remove_qemu_tls(vm_.qmp());
    (void)set_capabilities(false);
  });
}

}  // namespace

Result<MigrateReport> run_vm_migration(const MigrateOptions& options) {
  if (options.strategy == "log-shipping") return run_vm_log_shipping(options);
  VmSource s(options);
  return s.run();
}

}  // namespace relive::migrate
