// relived: the per-host agent. It accepts authenticated migrations and runs what they bring.
// One connection is served at a time (a migration is a long exchange; a second source waits in
// the listen queue). With --ha-config it is instead one peer of an HA pair (src/ha/ha_node.h).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/relived_config.h"
#include "cli/version.h"
#include "common/file_util.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/memory_policy.h"
#include "migrate/destination.h"
#include "security/audit_log.h"
#include "security/listener.h"
#include "security/replay_guard.h"
#include "security/request_gate.h"

namespace {

using namespace relive;

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_busy = 0;  // serving a migration: finish it before exiting
std::atomic<bool> g_ha_stop{false};
bool g_ha_mode = false;
// Between migrations there is nothing to wind down, and accept() would otherwise sit out its
// timeout first. An HA node winds down in its own loop.
void on_stop(int) {
  g_stop = 1;
  g_ha_stop = true;
  if (!g_busy && !g_ha_mode) ::_exit(0);
}

using Args = cli::RelivedConfig;

// One event of relived's on stderr (common/logging.h: human or JSON, with the migration id).
void say(const std::string& line) { RELIVE_LOG_INFO("{}", line); }

// A short id for the migration a connection brings: it tags every log line about it.
std::string new_migration_id(int served) { return fmt::format("m{}-{}", ::getpid(), served + 1); }

Status serve(const Args& a) {
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
  migrate::DestinationOptions d;
  d.node_name = a.name.empty() ? "relived" : a.name;
  d.tls_dir = a.tls_dir;
  d.insecure = a.insecure;
  d.work_root = a.work_dir;
  d.log_root = a.state_dir;
  d.runc_root = a.runc_root;
  d.runc_bundles = a.runc_bundles.empty() ? a.state_dir + "/runc-bundles" : a.runc_bundles;
  d.runc_netns = a.runc_netns;
  d.vm_root = a.vm_dir.empty() ? a.state_dir + "/vms" : a.vm_dir;
  int served = 0;
  while (!g_stop && (a.once == 0 || served < a.once)) {
    Result<std::unique_ptr<security::Channel>> ch = listener.accept();
    if (!ch.ok()) {
      if (ch.status().message().find("timed out") == std::string::npos)
        say("refused a connection: " + ch.status().to_string());
      continue;
    }
    std::string peer = (*ch)->peer().address + " " + (*ch)->peer().subject;
    std::string id = new_migration_id(served);
    ScopedLogContext log_ctx("migration", id);
    say("connection from " + peer);
    transfer::Link link(std::move(*ch));
    g_busy = 1;
    Result<migrate::DestinationOutcome> r = migrate::serve_migration(&link, &gate, d);
    g_busy = 0;
    ++served;
    if (!r.ok()) {
      say("migration from " + peer + " failed: " + r.status().to_string());
      continue;
    }
    say(fmt::format("migrated {} ({}): pid {}, restore {:.0f} ms", r->name, r->strategy,
                    r->root_pid, r->restore_ms));
    // stdout keeps one JSON line per migration for scripts (and the tests).
    nlohmann::json j = {
        {"event", "migrated"},        {"migration", id},    {"name", r->name},
        {"strategy", r->strategy},    {"pid", r->root_pid}, {"init_pid", r->init_pid},
        {"restore_ms", r->restore_ms}};
    if (!r->bundle.empty()) j["bundle"] = r->bundle;
    if (!r->vm_dir.empty()) j["vm_dir"] = r->vm_dir, j["qmp"] = r->vm_qmp;
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  relive::LoggingOptions log;
  log.program = "relived";
  log.default_level = spdlog::level::info;
  relive::init_logging(log);
  relive::keep_freed_memory();
  CLI::App app{"relived: the relive agent (receives live migrations)"};
  app.set_version_flag("--version", std::string("relived ") + relive::cli::kVersion);
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
  for (int s : {SIGINT, SIGTERM}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  relive::Status s;
  if (!a.ha_config.empty()) {
    g_ha_mode = true;
    s = a.name.empty()
            ? relive::Status::InvalidArgument("ha_config (--ha-config) needs name (--name PEER)")
            : relive::cli::serve_ha(a.ha_config, a.name, a.state_dir, a.insecure, &g_ha_stop);
  } else if (a.listen.empty()) {
    s = relive::Status::InvalidArgument(
        "listen (--listen ADDR:PORT) is required (or ha_config, --ha-config)");
  } else {
    s = serve(a);
  }
  if (!s.ok()) {
    RELIVE_LOG_ERROR("{}", s.to_string());
    return relive::cli::kExitError;
  }
  return 0;
}
