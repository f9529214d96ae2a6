// relive migrate --pid PID|--vm QMP_SOCKET --to ADDR:PORT ... and
// relive container migrate NAME|--pid PID --to ...
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "common/host_port.h"
#include "relive/migrate.h"

namespace relive::cli {
namespace {

struct MigrateArgs {
  MigrateOptions o;
  std::string to;
  bool json = false;
};

Status parse_to(const std::string& to, MigrateOptions* o) {
  Result<HostPort> hp = parse_host_port(to);
  if (!hp.ok())
    return Status::InvalidArgument("--to wants ADDR:PORT: " + hp.status().message() + ", got '" +
                                   to + "'");
  o->to_host = hp->host;
  o->to_port = hp->port;
  return Status::Ok();
}

void run_migrate(MigrateArgs& a, int* exit_code) {
  Status parsed = parse_to(a.to, &a.o);
  if (!parsed.ok()) {
    *exit_code = report_failure(parsed);
    return;
  }
  if (!a.o.insecure && (a.o.tls_dir.empty() || a.o.node_name.empty())) {
    *exit_code = report_failure(Status::InvalidArgument(
        "--tls-dir and --name are required (or --insecure for a plaintext channel)"));
    return;
  }
  // A bar redrawn in place on a terminal; plain "relive: <line>" lines otherwise and with --json.
  auto bar = std::make_shared<ProgressBar>(stderr, false, 80);
  if (!a.json) bar = make_stderr_bar();
  a.o.progress = [bar](const std::string& line) { bar->update(line); };
  Result<MigrateReport> r = run_migration(a.o);
  bar->finish();
  if (!r.ok()) {
    *exit_code = report_failure(r.status().with_context("migration failed"));
    return;
  }
  std::string out = a.json ? migrate_report_json(*r) + "\n" : migrate_report_text(*r);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  *exit_code = 0;
}

void add_options(CLI::App* c, MigrateArgs* a, const char* strategies, bool container) {
  auto* pid = c->add_option("--pid", a->o.pid, "Process (tree root) to migrate");
  if (container) {
    c->add_option("NAME", a->o.runc_name, "runc container to migrate (or --pid for a process tree)")
        ->excludes(pid);
  } else {
    auto* vm = c->add_option("--vm", a->o.vm_qmp,
                             "QMP socket of a QEMU VM to migrate (QEMU's own migration)");
    pid->excludes(vm);
    c->add_option("--downtime-limit", a->o.vm_downtime_limit_ms,
                  "VM: longest acceptable pause of the final pre-copy pass, ms")
        ->capture_default_str();
    c->add_flag("--xbzrle", a->o.vm_xbzrle, "VM: delta-compress pages resent by pre-copy");
    c->add_option("--multifd", a->o.vm_multifd_channels,
                  "VM: send memory over this many parallel connections");
    c->add_flag("--shared-storage", a->o.vm_shared_storage,
                "VM: the disks are on storage both hosts share (same paths): do not copy them "
                "(default: the destination creates its own images and the disks are mirrored)");
  }
  c->add_option("--to", a->to, "Destination relived, ADDR:PORT")->required();
  c->add_option("--strategy", a->o.strategy, strategies)->capture_default_str();
  c->add_option("--max-bandwidth", a->o.max_bandwidth,
                "Cap on what the migration sends to the destination, bytes/s, all streams "
                "together (0: none; VMs: QEMU's max-bandwidth, 0: QEMU's default)");
  c->add_option("--tls-dir", a->o.tls_dir, "Key directory (relive keys init)");
  c->add_option("--name", a->o.node_name, "This host's name in the key directory");
  c->add_option("--peer-name", a->o.peer_name, "The destination's expected certificate name");
  c->add_flag("--insecure", a->o.insecure, "Plaintext channel (the destination must agree)");
  c->add_option("--service-address", a->o.service_address,
                "IPv4 address/prefix that moves with the workload (a VM: the address the guest "
                "holds behind its tap, routed by the host)");
  c->add_flag("--tcp-established", a->o.tcp_established, "Migrate established TCP connections");
  c->add_option("--label", a->o.name, "Name of the workload at the destination");
  c->add_option("--log-threshold", a->o.log_threshold, "crtr: freeze below this log round size")
      ->capture_default_str();
  c->add_option("--max-rounds", a->o.max_rounds, "Bound on iterative rounds")
      ->capture_default_str();
  c->add_option("--work-dir", a->o.work_dir, "Parent of the temporary images directory");
  c->add_option_function<int>(
      "--io-timeout", [a](int s) { a->o.io_timeout = std::chrono::seconds(s); },
      "Seconds one exchange with the destination may take before the link counts as cut (60)");
  c->add_flag("--json", a->json, "Print the report as JSON");
}

}  // namespace

void register_migrate(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<MigrateArgs>();
  auto* c =
      app.add_subcommand("migrate", "Live-migrate a running process or QEMU VM to another host");
  add_options(c, a.get(),
              "crtr | precopy | postcopy | stop-copy | auto (VMs: precopy | postcopy | auto | "
              "log-shipping)",
              false);
  c->callback([a, exit_code] { run_migrate(*a, exit_code); });

  CLI::App* container = app.get_subcommand("container");
  auto b = std::make_shared<MigrateArgs>();
  b->o.process_tree = true;
  auto* cm = container->add_subcommand(
      "migrate", "Live-migrate a runc container (NAME) or a process tree (--pid) to another host");
  add_options(
      cm, b.get(),
      "stop-copy | precopy | postcopy | auto (runc containers: stop-copy | postcopy | auto)", true);
  cm->callback([b, exit_code] { run_migrate(*b, exit_code); });
}

}  // namespace relive::cli
