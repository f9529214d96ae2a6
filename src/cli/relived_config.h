// RelivedConfig: how relived runs, from /etc/relive/relived.toml (examples/relived.toml shows
// every key) and its command line. Flags given on the command line override the file's keys;
// --config FILE names the file, which is otherwise /etc/relive/relived.toml when that exists.
// Every value is validated before relived starts: a bad one is InvalidArgument naming the key
// and its line ("relived.toml: max_concurrent (line 4): must be between 1 and 1024, got 0") or
// the flag ("--listen: ..."); unknown keys are errors too.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/logging.h"
#include "relive/result.h"

namespace relive::cli {

inline constexpr const char* kDefaultRelivedConfig = "/etc/relive/relived.toml";

struct RelivedConfig {
  std::string listen;  // ADDR:PORT migrations arrive on ("" with ha_config)
  std::string name;    // this host's name in tls_dir
  std::string tls_dir;
  bool insecure = false;
  std::string state_dir = "/var/lib/relive";  // audit log, runc bundles, VMs by default
  std::string work_dir;                       // incoming images; "" = /dev/shm
  int max_concurrent = 4;                     // migrations served at once
  int io_timeout_s = 60;                      // one exchange with a peer, then the link is cut
  int drain_timeout_s = 120;   // after SIGTERM, running migrations' time to end; then links cut
  std::string metrics_listen;  // ADDR:PORT of /metrics; "" = off
  LogFormat log_format = LogFormat::kHuman;
  std::string vm_dir;     // "" = state_dir/vms
  std::string ha_config;  // HA pair mode: the pair's TOML file
  // [runc]
  std::string runc_root;
  std::string runc_bundles;  // "" = state_dir/runc-bundles
  std::string runc_netns;
  // Command line only (tests): serve this many migrations, then exit; 0 = forever.
  int once = 0;
};

// Parses and validates relived.toml text; `source` names it in errors (a path).
Result<RelivedConfig> parse_relived_config(std::string_view toml_text,
                                           std::string_view source = "relived.toml");
// Reads and parses the file at `path`.
Result<RelivedConfig> load_relived_config(const std::string& path);

// relived's flags on a CLI11 app. After app.parse(), resolve() reads the config file and lays
// the flags that were given over it. Not copyable: the options refer to it; it must outlive
// the app's parse().
class RelivedFlags {
 public:
  // `default_config` is read when --config is not given and it exists (tests pass their own).
  explicit RelivedFlags(CLI::App* app, std::string default_config = kDefaultRelivedConfig);
  RelivedFlags(const RelivedFlags&) = delete;
  RelivedFlags& operator=(const RelivedFlags&) = delete;

  Result<RelivedConfig> resolve() const;
  // The file resolve() read ("" when none), for a log line.
  const std::string& config_path() const { return used_path_; }

 private:
  template <typename T>
  CLI::Option* add(const char* flag, T RelivedConfig::*member, const std::string& help);
  Status check_flags() const;

  CLI::App* app_;
  std::string default_config_;
  std::string config_;  // --config
  CLI::Option* config_option_ = nullptr;
  RelivedConfig given_;  // what the flags wrote
  std::string log_format_flag_;
  CLI::Option* log_format_option_ = nullptr;
  // Each copies one flag's value from given_ into the result when the flag was given.
  std::vector<std::function<void(RelivedConfig*)>> overrides_;
  mutable std::string used_path_;
};

}  // namespace relive::cli
