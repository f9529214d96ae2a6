#include "cli/relived_config.h"

#include <sys/stat.h>

#include "common/file_util.h"
#include "common/host_port.h"
#include "common/toml_section.h"

namespace relive::cli {
namespace {

// The checks every key and its flag share; the caller names the key or flag.
std::string address_problem(const std::string& v) {
  Result<HostPort> hp = parse_host_port(v);
  return hp.ok() ? "" : "wants ADDR:PORT: " + hp.status().message() + ", got '" + v + "'";
}

std::string path_problem(const std::string& v) {
  return v.empty() || v.front() == '/' ? "" : "must be an absolute path, got '" + v + "'";
}

Status string_key(TomlSection& s, const char* key, std::string* out, bool path) {
  RELIVE_ASSIGN_OR_RETURN(*out, s.string(key, *out));
  if (std::string p = path ? path_problem(*out) : ""; !p.empty()) return s.error(key, p);
  return Status::Ok();
}

Status address_key(TomlSection& s, const char* key, std::string* out, bool allow_empty) {
  RELIVE_ASSIGN_OR_RETURN(*out, s.string(key, *out, allow_empty));
  if (out->empty()) return Status::Ok();
  if (std::string p = address_problem(*out); !p.empty()) return s.error(key, p);
  return Status::Ok();
}

Status parse_runc(TomlSection& root, RelivedConfig* c) {
  if (!root.has("runc")) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(TomlSection s, root.table("runc"));
  RELIVE_RETURN_IF_ERROR(string_key(s, "root", &c->runc_root, true));
  RELIVE_RETURN_IF_ERROR(string_key(s, "bundles", &c->runc_bundles, true));
  RELIVE_RETURN_IF_ERROR(string_key(s, "netns", &c->runc_netns, true));
  return s.finish();
}

Status parse_root(TomlSection& s, RelivedConfig* c) {
  RELIVE_RETURN_IF_ERROR(address_key(s, "listen", &c->listen, false));
  RELIVE_RETURN_IF_ERROR(string_key(s, "name", &c->name, false));
  RELIVE_RETURN_IF_ERROR(string_key(s, "tls_dir", &c->tls_dir, true));
  RELIVE_ASSIGN_OR_RETURN(c->insecure, s.boolean("insecure", c->insecure));
  RELIVE_RETURN_IF_ERROR(string_key(s, "state_dir", &c->state_dir, true));
  RELIVE_RETURN_IF_ERROR(string_key(s, "work_dir", &c->work_dir, true));
  RELIVE_ASSIGN_OR_RETURN(uint64_t mc, s.integer("max_concurrent", c->max_concurrent, 1, 1024));
  c->max_concurrent = static_cast<int>(mc);
  RELIVE_ASSIGN_OR_RETURN(uint64_t io, s.integer("io_timeout_s", c->io_timeout_s, 1, 86400));
  c->io_timeout_s = static_cast<int>(io);
  RELIVE_ASSIGN_OR_RETURN(uint64_t dt, s.integer("drain_timeout_s", c->drain_timeout_s, 0, 86400));
  c->drain_timeout_s = static_cast<int>(dt);
  RELIVE_RETURN_IF_ERROR(address_key(s, "metrics_listen", &c->metrics_listen, true));
  RELIVE_ASSIGN_OR_RETURN(std::string lf, s.string("log_format", std::string("human")));
  Result<LogFormat> f = parse_log_format(lf);
  if (!f.ok()) return s.error("log_format", f.status().message());
  c->log_format = *f;
  RELIVE_RETURN_IF_ERROR(string_key(s, "vm_dir", &c->vm_dir, true));
  RELIVE_RETURN_IF_ERROR(string_key(s, "ha_config", &c->ha_config, true));
  RELIVE_RETURN_IF_ERROR(parse_runc(s, c));
  return s.finish();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Result<RelivedConfig> parse_relived_config(std::string_view toml_text, std::string_view source) {
  RELIVE_ASSIGN_OR_RETURN(toml::table doc, parse_toml(toml_text, source));
  RelivedConfig c;
  TomlSection root(doc, "");
  Status st = parse_root(root, &c);
  if (!st.ok()) return st.with_context(source);
  return c;
}

Result<RelivedConfig> load_relived_config(const std::string& path) {
  RELIVE_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_relived_config(text, path);
}

template <typename T>
CLI::Option* RelivedFlags::add(const char* flag, T RelivedConfig::*member,
                               const std::string& help) {
  CLI::Option* o;
  if constexpr (std::is_same_v<T, bool>)
    o = app_->add_flag(flag, given_.*member, help);
  else
    o = app_->add_option(flag, given_.*member, help);
  overrides_.push_back([this, o, member](RelivedConfig* c) {
    if (o->count() > 0) c->*member = given_.*member;
  });
  return o;
}

RelivedFlags::RelivedFlags(CLI::App* app, std::string default_config)
    : app_(app), default_config_(std::move(default_config)) {
  config_option_ = app_->add_option("--config", config_,
                                    "relived.toml to read (default " + default_config_ +
                                        " when it exists); flags override its keys");
  add("--listen", &RelivedConfig::listen, "ADDR:PORT to accept migrations on");
  add("--ha-config", &RelivedConfig::ha_config,
      "Serve as peer --name of the HA pair this TOML file describes (examples/ha-pair.toml); it "
      "gives the listening address");
  add("--tls-dir", &RelivedConfig::tls_dir, "Key directory (relive keys init)");
  add("--name", &RelivedConfig::name, "This host's name in the key directory");
  add("--insecure", &RelivedConfig::insecure,
      "Plaintext, unauthenticated (tests, trusted hosts only)");
  add("--state-dir", &RelivedConfig::state_dir, "Audit log (default /var/lib/relive)");
  add("--work-dir", &RelivedConfig::work_dir,
      "Where incoming images go while a migration runs (default /dev/shm)");
  add("--max-concurrent", &RelivedConfig::max_concurrent,
      "Migrations served at once; the next is refused (default 4)");
  add("--io-timeout", &RelivedConfig::io_timeout_s,
      "Seconds one exchange with a peer may take before its link counts as cut (default 60)");
  add("--drain-timeout", &RelivedConfig::drain_timeout_s,
      "Seconds the running migrations get to end after SIGTERM/SIGINT before their links are "
      "cut and they roll back (default 120; 0: at once)");
  add("--metrics-listen", &RelivedConfig::metrics_listen,
      "ADDR:PORT to serve Prometheus /metrics on (default: off)");
  log_format_option_ = app_->add_option("--log-format", log_format_flag_,
                                        "human (default) or json: one line per event on stderr");
  add("--vm-dir", &RelivedConfig::vm_dir,
      "Parent of migrated VMs' directories (QEMU's working directory, QMP socket, log; default: "
      "STATE_DIR/vms)");
  add("--runc-root", &RelivedConfig::runc_root, "runc --root for migrated runc containers");
  add("--runc-bundles", &RelivedConfig::runc_bundles,
      "Parent of migrated runc containers' bundles (default: STATE_DIR/runc-bundles)");
  add("--runc-netns", &RelivedConfig::runc_netns,
      "Network namespace path for migrated runc containers that had one by path (default: "
      "relived's own, /proc/PID/ns/net)");
  add("--once", &RelivedConfig::once, "Exit after serving this many migrations");
}

Status RelivedFlags::check_flags() const {
  auto given = [&](const char* flag) { return app_->get_option(flag)->count() > 0; };
  for (auto [flag, value] : {std::pair{"--listen", &given_.listen},
                             std::pair{"--metrics-listen", &given_.metrics_listen}}) {
    if (!given(flag) || (value->empty() && std::string(flag) == "--metrics-listen")) continue;
    if (std::string p = address_problem(*value); !p.empty())
      return Status::InvalidArgument(std::string(flag) + ": " + p);
  }
  for (auto [flag, value] :
       {std::pair{"--tls-dir", &given_.tls_dir}, std::pair{"--state-dir", &given_.state_dir},
        std::pair{"--work-dir", &given_.work_dir}, std::pair{"--vm-dir", &given_.vm_dir},
        std::pair{"--ha-config", &given_.ha_config}, std::pair{"--runc-root", &given_.runc_root},
        std::pair{"--runc-bundles", &given_.runc_bundles},
        std::pair{"--runc-netns", &given_.runc_netns}}) {
    if (!given(flag)) continue;
    if (std::string p = path_problem(*value); !p.empty())
      return Status::InvalidArgument(std::string(flag) + ": " + p);
  }
  if (given("--max-concurrent") && (given_.max_concurrent < 1 || given_.max_concurrent > 1024))
    return Status::InvalidArgument("--max-concurrent: must be between 1 and 1024, got " +
                                   std::to_string(given_.max_concurrent));
  if (given("--io-timeout") && (given_.io_timeout_s < 1 || given_.io_timeout_s > 86400))
    return Status::InvalidArgument("--io-timeout: must be between 1 and 86400, got " +
                                   std::to_string(given_.io_timeout_s));
  if (given("--drain-timeout") && (given_.drain_timeout_s < 0 || given_.drain_timeout_s > 86400))
    return Status::InvalidArgument("--drain-timeout: must be between 0 and 86400, got " +
                                   std::to_string(given_.drain_timeout_s));
  if (given("--once") && given_.once < 0)
    return Status::InvalidArgument("--once: must not be negative, got " +
                                   std::to_string(given_.once));
  return Status::Ok();
}

Result<RelivedConfig> RelivedFlags::resolve() const {
  RELIVE_RETURN_IF_ERROR(check_flags());
  RelivedConfig c;
  used_path_.clear();
  if (config_option_->count() > 0) {
    used_path_ = config_;
  } else if (file_exists(default_config_)) {
    used_path_ = default_config_;
  }
  if (!used_path_.empty()) {
    RELIVE_ASSIGN_OR_RETURN(c, load_relived_config(used_path_));
  }
  for (const auto& apply : overrides_) apply(&c);
  if (log_format_option_->count() > 0) {
    Result<LogFormat> f = parse_log_format(log_format_flag_);
    if (!f.ok()) return f.status().with_context("--log-format");
    c.log_format = *f;
  }
  return c;
}

}  // namespace relive::cli
