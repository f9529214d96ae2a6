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
#include <string>

#include "agent/migration_server.h"
#include "cli/commands.h"
#include "cli/relived_config.h"
#include "common/file_util.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/memory_policy.h"
#include "common/metrics.h"
#include "common/version.h"
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

using Args = cli::RelivedConfig;

// One event of relived's on stderr (common/logging.h: human or JSON, with the migration id).
void say(const std::string& line) { RELIVE_LOG_INFO("{}", line); }

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
  so.drain_timeout = std::chrono::seconds(a.drain_timeout_s);
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
  relive::LoggingOptions log;
  log.program = "relived";
  log.default_level = spdlog::level::info;
  relive::init_logging(log);
  relive::keep_freed_memory();
  CLI::App app{"relived: the relive agent (receives live migrations)"};
  app.set_version_flag("--version", std::string("relived ") + relive::kVersion);
  relive::cli::RelivedFlags flags(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : relive::cli::kExitError;
  }
  relive::Result<relive::cli::RelivedConfig> cfg = flags.resolve();
  if (!cfg.ok()) {
    RELIVE_LOG_ERROR("{}", cfg.status().to_string());
    return relive::cli::kExitError;
  }
  const relive::cli::RelivedConfig& a = *cfg;
  log.format = a.log_format;
  relive::init_logging(log);
  if (!flags.config_path().empty()) say("configuration from " + flags.config_path());
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sa.sa_flags = SA_RESTART;  // a worker's syscall interrupted by SIGTERM resumes
  for (int s : {SIGINT, SIGTERM}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  relive::metrics::Registry registry;
  std::unique_ptr<relive::net::MetricsEndpoint> metrics_endpoint;
  if (!a.metrics_listen.empty()) {
    auto e = relive::net::MetricsEndpoint::start(a.metrics_listen, &registry);
    if (!e.ok()) {
      RELIVE_LOG_ERROR("metrics_listen (--metrics-listen): {}", e.status().to_string());
      return relive::cli::kExitError;
    }
    metrics_endpoint = std::move(*e);
    say(fmt::format("metrics on http://{}/metrics", a.metrics_listen));
  }
  relive::Status s;
  if (!a.ha_config.empty()) {
    s = a.name.empty()
            ? relive::Status::InvalidArgument("ha_config (--ha-config) needs name (--name PEER)")
            : relive::cli::serve_ha(a.ha_config, a.name, a.state_dir, a.insecure, &g_ha_stop,
                                    &registry);
  } else if (a.listen.empty()) {
    s = relive::Status::InvalidArgument(
        "listen (--listen ADDR:PORT) is required (or ha_config, --ha-config)");
  } else {
    s = serve(a, &registry);
  }
  if (!s.ok()) {
    RELIVE_LOG_ERROR("{}", s.to_string());
    return relive::cli::kExitError;
  }
  return 0;
}
