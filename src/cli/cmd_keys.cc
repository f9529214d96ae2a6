// relive keys init: the CA and host certificates that authenticate relived channels.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "security/keys.h"

namespace relive::cli {
namespace {

void run_init(const security::KeyInitOptions& opts, int* exit_code) {
  Result<security::KeyInitReport> r = security::init_keys(opts);
  if (!r.ok()) {
    *exit_code = report_failure(r.status());
    return;
  }
  for (const std::string& p : r->created) std::printf("created %s\n", p.c_str());
  for (const std::string& p : r->kept) {
    std::printf("kept    %s (exists; --force replaces it)\n", p.c_str());
  }
  std::fflush(stdout);
  *exit_code = 0;
}

}  // namespace

void register_keys(CLI::App& app, int* exit_code) {
  auto* keys = app.add_subcommand("keys", "Manage the certificates that authenticate relived");
  keys->require_subcommand(1);
  auto opts = std::make_shared<security::KeyInitOptions>();
  auto* init = keys->add_subcommand("init", "Create a CA and a certificate per host in DIR");
  init->add_option("dir", opts->dir, "Key directory (created if missing)")->required();
  init->add_option("--hosts", opts->hosts, "Host names, comma-separated")
      ->required()
      ->delimiter(',');
  init->add_option("--days", opts->days, "Host certificate lifetime in days")
      ->capture_default_str();
  init->add_option("--ca-days", opts->ca_days, "CA certificate lifetime in days")
      ->capture_default_str();
  init->add_flag("--force", opts->force, "Replace existing keys and certificates");
  init->callback([opts, exit_code] { run_init(*opts, exit_code); });
}

}  // namespace relive::cli
