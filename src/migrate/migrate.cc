#include "relive/migrate.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "migrate/auto_strategy.h"
#include "migrate/source.h"
#include "migrate/vm_source.h"
#include "transfer/bulk.h"

namespace relive {

namespace m = relive::migration;
using migrate::Source;

namespace {

Result<m::Strategy> parse_strategy(const std::string& s) {
  if (s == "stop-copy") return m::Strategy::kStopCopy;
  if (s == "precopy") return m::Strategy::kPrecopy;
  if (s == "postcopy") return m::Strategy::kPostcopy;
  if (s == "crtr") return m::Strategy::kCrtr;
  return Status::InvalidArgument("unknown strategy '" + s +
                                 "' (stop-copy, precopy, postcopy, crtr, auto)");
}

// The destination reads each bulk segment (up to BulkSender::kBatchBytes) within one I/O
// timeout: a cap that cannot move two of them in --io-timeout would end in a timeout mid-way.
Status check_bandwidth(const MigrateOptions& o) {
  if (o.max_bandwidth == 0) return Status::Ok();
  double seconds = std::chrono::duration<double>(o.io_timeout).count();
  double need = 2.0 * transfer::BulkSender::kBatchBytes / seconds;
  if (static_cast<double>(o.max_bandwidth) >= need) return Status::Ok();
  return Status::InvalidArgument(fmt::format(
      "--max-bandwidth {} B/s is too low: a {} MiB segment must cross within the I/O timeout "
      "({:.0f} s); give at least {:.0f} B/s or a longer --io-timeout (and relived's)",
      o.max_bandwidth, transfer::BulkSender::kBatchBytes >> 20, seconds, need));
}

Status run(Source* s, m::Strategy strategy) {
  if (s->is_runc()) {
    if (strategy == m::Strategy::kStopCopy) return migrate::run_runc_stop_copy(s);
    if (strategy == m::Strategy::kPostcopy) return migrate::run_runc_postcopy(s);
    if (strategy == m::Strategy::kPrecopy) return migrate::run_runc_precopy(s);
    return Status::Unsupported("runc containers migrate with stop-copy, precopy or postcopy");
  }
  switch (strategy) {
    case m::Strategy::kStopCopy:
      return migrate::run_stop_copy(s);
    case m::Strategy::kPostcopy:
      return migrate::run_postcopy(s);
    case m::Strategy::kPrecopy:
      return migrate::run_precopy(s);
    case m::Strategy::kCrtr:
      return migrate::run_crtr(s);
    case m::Strategy::kLogShipping:
      return Status::InvalidArgument("log shipping moves QEMU VMs (--vm) only; processes: crtr");
  }
  return Status::InvalidArgument("strategy");
}

}  // namespace

Result<MigrateReport> run_migration(const MigrateOptions& o) {
  if (!o.vm_qmp.empty()) {
    Result<MigrateReport> r = migrate::run_vm_migration(o);
    if (r.ok()) r->max_bandwidth = o.max_bandwidth;  // QEMU's own rate is in r->vm
    return r;
  }
  if (o.pid <= 0 && o.runc_name.empty())
    return Status::InvalidArgument("no process to migrate (--pid) and no container (NAME)");
  if (o.pid > 0 && !o.runc_name.empty())
    return Status::InvalidArgument("give a container NAME or --pid, not both");
  RELIVE_RETURN_IF_ERROR(check_bandwidth(o));
  std::string reason = "requested";
  m::Strategy strategy;
  if (o.strategy == "auto" && !o.runc_name.empty()) {
    // A container is a tree (no CR/TR): pre-copy, which turns to post-copy by itself when its
    // rounds stop converging.
    strategy = m::Strategy::kPrecopy;
    reason = "runc container: pre-copy, switching to post-copy if it stops converging";
    if (o.progress) o.progress(fmt::format("auto: precopy ({})", reason));
  } else if (o.strategy == "auto") {
    RELIVE_ASSIGN_OR_RETURN(migrate::StrategyChoice c, migrate::choose_strategy(o));
    strategy = c.strategy;
    reason = c.reason;
    if (o.progress) o.progress(fmt::format("auto: {} ({})", m::strategy_name(strategy), reason));
  } else {
    RELIVE_ASSIGN_OR_RETURN(strategy, parse_strategy(o.strategy));
  }
  if (!o.runc_name.empty() && strategy == m::Strategy::kCrtr) {
    return Status::Unsupported(
        "runc containers migrate with stop-copy, precopy or postcopy; CR/TR records one process");
  }
  Source s(o);
  RELIVE_RETURN_IF_ERROR(s.open(strategy));
  s.report().reason = reason;
  RELIVE_RETURN_IF_ERROR(run(&s, strategy));
  return s.finish();
}

static std::string vm_text(const MigrateReport& r) {
  if (r.vm.empty() && r.vm_dir.empty()) return "";
  std::string qemu, disks;
  for (const auto& [k, v] : r.vm) qemu += fmt::format(" {}={}", k, v);
  for (const DiskReport& d : r.disks) {
    disks += fmt::format("disk {}: {} {}, {} of {} bytes in {:.1f} ms\n", d.device, d.format,
                         d.mode, d.bytes, d.virtual_size, d.ms);
  }
  return fmt::format("qemu:{}\ndestination vm dir: {}\n{}", qemu, r.vm_dir, disks);
}

// The cap and what the metered link achieved (processes and containers).
static std::string bandwidth_text(const MigrateReport& r) {
  std::string cap = r.max_bandwidth > 0 ? fmt::format("{} B/s", r.max_bandwidth) : "none";
  if (r.link_bytes == 0) return fmt::format("bandwidth: cap {}\n", cap);
  return fmt::format("bandwidth: cap {}, sent {} bytes in {:.1f} ms busy, {:.0f} B/s\n", cap,
                     r.link_bytes, r.link_busy_ms, r.link_rate);
}

std::string migrate_report_text(const MigrateReport& r) {
  std::string phases;
  for (const auto& [k, v] : r.bytes_by_phase) phases += fmt::format(" {}={}", k, v);
  return fmt::format(
      "strategy: {} ({})\ndowntime: {:.1f} ms\ntotal: {:.1f} ms\nbytes: {} ({})\nrounds: {}\n"
      "destination restore: {:.1f} ms, pid {}, confirmed running after {:.1f} ms\n{}{}",
      r.strategy, r.reason, r.downtime_ms, r.total_ms, r.bytes_total,
      phases.empty() ? "" : phases.substr(1), r.rounds, r.restore_ms, r.destination_pid,
      r.confirm_ms, bandwidth_text(r), vm_text(r));
}

std::string migrate_report_json(const MigrateReport& r) {
  nlohmann::json j = {{"strategy", r.strategy},       {"reason", r.reason},
                      {"downtime_ms", r.downtime_ms}, {"total_ms", r.total_ms},
                      {"bytes_total", r.bytes_total}, {"bytes_by_phase", r.bytes_by_phase},
                      {"rounds", r.rounds},           {"restore_ms", r.restore_ms},
                      {"confirm_ms", r.confirm_ms},   {"destination_pid", r.destination_pid}};
  j["max_bandwidth"] = r.max_bandwidth;
  j["link_bytes"] = r.link_bytes;
  j["link_busy_ms"] = r.link_busy_ms;
  j["link_rate"] = r.link_rate;
  if (!r.vm.empty() || !r.vm_dir.empty()) {
    j["vm"] = r.vm;
    j["vm_dir"] = r.vm_dir;
    nlohmann::json disks = nlohmann::json::array();
    for (const DiskReport& d : r.disks) {
      disks.push_back({{"device", d.device},
                       {"format", d.format},
                       {"mode", d.mode},
                       {"bytes", d.bytes},
                       {"virtual_size", d.virtual_size},
                       {"ms", d.ms}});
    }
    j["disks"] = disks;
  }
  return j.dump();
}

}  // namespace relive
