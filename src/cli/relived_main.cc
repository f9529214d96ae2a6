// relived: the per-host agent. It accepts authenticated migrations and runs what they bring.
// Several migrations are served at once, each on its own worker (src/agent/migration_server.h),
// up to --max-concurrent; the next is refused, not queued. With --ha-config it is instead one
// peer of an HA pair (src/ha/ha_node.h).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/migration_server.h"
#include "cli/commands.h"
#include "common/file_util.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/memory_policy.h"
#include "common/metrics.h"
#include "migrate/destination.h"
#include "migrate/migration_metrics.h"
#include "net/metrics_endpoint.h"
#include "security/audit_log.h"
#include "security/listener.h"
#include "security/replay_guard.h"
#include "security/request_gate.h"

namespace {

using namespace relive;

// Set by SIGINT/SIGTERM: the migration server stops accepting, lets the running migrations
// end and returns; an HA node winds down in its own loop.
std::atomic<bool> g_stop{false};
std::atomic<bool> g_ha_stop{false};
void on_stop(int) {
  g_stop = true;
  g_ha_stop = true;
}

struct Args {
  std::string listen;
  std::string tls_dir, name, state_dir = "/var/lib/relive", work_dir;
  bool insecure = false;
  int once = 0;  // serve this many migrations, then exit (0: forever)
  int max_concurrent = 4;
  int io_timeout_s = 60;
  std::string runc_root, runc_bundles, runc_netns;
  std::string ha_config;
  std::string vm_dir;
  std::string metrics_listen;  // ADDR:PORT of the Prometheus endpoint; "" = off
};

void say(const std::string& line) {
  std::fprintf(stderr, "relived: %s\n", line.c_str());
  std::fflush(stderr);
}

Status serve(const Args& a, metrics::Registry* registry) {
  Result<HostPort> listen = parse_host_port(a.listen);
  if (!listen.ok()) {
    return Status::InvalidArgument("--listen wants ADDR:PORT: " + listen.status().message() +
                                   ", got '" + a.listen + "'");
  }
  if (!a.insecure && (a.tls_dir.empty() || a.name.empty()))
    return Status::InvalidArgument("--tls-dir and --name are required (or --insecure)");
  security::ChannelOptions co;
  if (a.insecure)
    co.insecure = true;
  else
    co = security::tls_options_for_host(a.tls_dir, a.name);
  if (a.max_concurrent < 1) return Status::InvalidArgument("--max-concurrent must be at least 1");
  if (a.io_timeout_s < 1) return Status::InvalidArgument("--io-timeout must be at least 1 s");
  co.timeout = std::chrono::seconds(a.io_timeout_s);
  RELIVE_RETURN_IF_ERROR(make_dirs(a.state_dir));
  RELIVE_ASSIGN_OR_RETURN(security::AuditLog audit,
                          security::AuditLog::open(a.state_dir + "/audit.jsonl"));
  security::ReplayGuard guard;
  security::RequestGate gate(&guard, &audit);
  RELIVE_ASSIGN_OR_RETURN(security::Listener listener,
                          security::Listener::create(listen->host, listen->port, co));
  say(fmt::format("listening on {} ({})", format_host_port({listen->host, listener.port()}),
                  a.insecure ? "INSECURE plaintext" : "TLS 1.3, mutual authentication"));
  agent::MigrationServerOptions so;
  so.max_concurrent = a.max_concurrent;
  so.once = a.once;
  migrate::DestinationOptions& d = so.destination;
  d.node_name = a.name.empty() ? "relived" : a.name;
  d.tls_dir = a.tls_dir;
  d.insecure = a.insecure;
  d.work_root = a.work_dir;
  d.log_root = a.state_dir;
  d.runc_root = a.runc_root;
  d.runc_bundles = a.runc_bundles.empty() ? a.state_dir + "/runc-bundles" : a.runc_bundles;
  d.runc_netns = a.runc_netns;
  d.vm_root = a.vm_dir.empty() ? a.state_dir + "/vms" : a.vm_dir;
  migrate::MigrationMetrics migration_metrics(registry);
  d.metrics = &migration_metrics;
  agent::MigrationServer server(&listener, &gate, std::move(so), stdout, say);
  return server.run(g_stop);
}

}  // namespace

int main(int argc, char** argv) {
  relive::init_logging();
  relive::keep_freed_memory();
  CLI::App app{"relived: the relive agent (receives live migrations)"};
  Args a;
  app.set_version_flag("--version", "relived 0.2.0");
  app.add_option("--listen", a.listen, "ADDR:PORT to accept migrations on");
  app.add_option("--ha-config", a.ha_config,
                 "Serve as peer --name of the HA pair this TOML file describes "
                 "(examples/ha-pair.toml); it gives the listening address");
  app.add_option("--tls-dir", a.tls_dir, "Key directory (relive keys init)");
  app.add_option("--name", a.name, "This host's name in the key directory");
  app.add_flag("--insecure", a.insecure, "Plaintext, unauthenticated (tests, trusted hosts only)");
  app.add_option("--state-dir", a.state_dir, "Audit log")->capture_default_str();
  app.add_option("--work-dir", a.work_dir,
                 "Where incoming images go while a migration runs (default /dev/shm)");
  app.add_option("--once", a.once, "Exit after serving this many migrations");
  app.add_option("--max-concurrent", a.max_concurrent,
                 "Migrations received at once; the next is refused with \"destination busy\"")
      ->capture_default_str();
  app.add_option("--io-timeout", a.io_timeout_s,
                 "Seconds a peer may stay silent (handshake, any read or write) before its "
                 "connection is dropped")
      ->capture_default_str();
  app.add_option("--runc-root", a.runc_root, "runc --root for migrated runc containers");
  app.add_option("--runc-bundles", a.runc_bundles,
                 "Parent of migrated runc containers' bundles (default: STATE_DIR/runc-bundles)");
  app.add_option("--runc-netns", a.runc_netns,
                 "Network namespace path for migrated runc containers that had one by path "
                 "(default: relived's own, /proc/PID/ns/net)");
  app.add_option("--vm-dir", a.vm_dir,
                 "Parent of migrated VMs' directories (QEMU's working directory, QMP socket, "
                 "log; default: STATE_DIR/vms)");
  app.add_option("--metrics-listen", a.metrics_listen,
                 "ADDR:PORT to serve Prometheus metrics on, at /metrics (plain HTTP; "
                 "docs/metrics.md; default: off)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : relive::cli::kExitError;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  for (int s : {SIGINT, SIGTERM}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  relive::metrics::Registry registry;
  std::unique_ptr<relive::net::MetricsEndpoint> metrics_endpoint;
  if (!a.metrics_listen.empty()) {
    auto e = relive::net::MetricsEndpoint::start(a.metrics_listen, &registry);
    if (!e.ok()) {
      std::fprintf(stderr, "relived: --metrics-listen: %s\n", e.status().to_string().c_str());
      return relive::cli::kExitError;
    }
    metrics_endpoint = std::move(*e);
    say(fmt::format("metrics on http://{}/metrics", a.metrics_listen));
  }
  relive::Status s;
  if (!a.ha_config.empty()) {
    s = a.name.empty() ? relive::Status::InvalidArgument("--ha-config needs --name PEER")
                       : relive::cli::serve_ha(a.ha_config, a.name, a.state_dir, a.insecure,
                                               &g_ha_stop, &registry);
  } else if (a.listen.empty()) {
    s = relive::Status::InvalidArgument("--listen ADDR:PORT is required (or --ha-config)");
  } else {
    s = serve(a, &registry);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "relived: %s\n", s.to_string().c_str());
    return relive::cli::kExitError;
  }
  return 0;
}
