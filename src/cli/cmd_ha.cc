// relive ha status | switchover: ask the HA pair's relived nodes (from the pair's config) over
// their authenticated channel; and serve_ha(), the HA mode of relived.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "common/file_util.h"
#include "common/json_field.h"
#include "ha/ha_config.h"
#include "ha/ha_node.h"
#include "security/keys.h"
#include "security/listener.h"
#include "transfer/link.h"

namespace relive::cli {
namespace {
namespace m = relive::migration;

struct HaArgs {
  std::string config;
  std::string name;  // whose key to use; default: the first peer whose key is in tls_dir
  bool json = false;
  bool insecure = false;
};

Result<std::string> identity(const ha::HaConfig& c, const HaArgs& a) {
  if (!a.name.empty()) return a.name;
  for (const ha::PeerConfig& p : c.peers) {
    if (::access(security::host_key_files(c.tls_dir, p.name).key.c_str(), R_OK) == 0) return p.name;
  }
  return Status::NotFound("no peer's key is in " + c.tls_dir + " (pass --name)");
}

// Sends one command to `peer` and returns the Ack's detail.
Result<std::string> ask(const ha::HaConfig& c, const HaArgs& a, const ha::PeerConfig& peer,
                        const m::Command& command, std::chrono::seconds timeout) {
  security::ChannelOptions co;
  if (a.insecure) {
    co.insecure = true;
  } else {
    RELIVE_ASSIGN_OR_RETURN(std::string me, identity(c, a));
    co = security::tls_options_for_host(c.tls_dir, me, peer.name);
  }
  co.timeout = timeout;
  RELIVE_ASSIGN_OR_RETURN(std::unique_ptr<security::Channel> ch,
                          security::connect_channel(peer.host, peer.port, co));
  transfer::Link link(std::move(ch));
  RELIVE_ASSIGN_OR_RETURN(std::string me,
                          a.insecure ? Result<std::string>(std::string("cli")) : identity(c, a));
  RELIVE_RETURN_IF_ERROR(link.hello(me));
  return link.call(command);
}

void status(const HaArgs& a, int* exit_code) {
  Result<ha::HaConfig> c = ha::load_ha_config(a.config);
  if (!c.ok()) {
    *exit_code = report_failure(c.status());
    return;
  }
  nlohmann::json all = nlohmann::json::array();
  for (const ha::PeerConfig& p : c->peers) {
    Result<std::string> r = ask(*c, a, p, m::HaStatus{}, std::chrono::seconds(3));
    Result<nlohmann::json> j = r.ok() ? parse_json_object(*r, p.name + "'s status") : r.status();
    if (!j.ok()) {
      j = nlohmann::json{
          {"name", p.name}, {"role", "unreachable"}, {"error", j.status().to_string()}};
    }
    all.push_back(*j);
  }
  if (a.json) {
    std::printf("%s\n", all.dump(2).c_str());
  } else {
    for (const auto& j : all) {
      // From another host: a field of the wrong type prints as if it were absent.
      std::printf("%-10s %-11s", json_value_or(j, "name", "?").c_str(),
                  json_value_or(j, "role", "?").c_str());
      if (j.contains("error")) {
        std::printf(" %s\n", json_value_or(j, "error", "").c_str());
        continue;
      }
      std::printf(" epoch %-8llu %5.1f epochs/s  last commit %lld ms ago",
                  static_cast<unsigned long long>(json_value_or(j, "committed_epoch", 0ull)),
                  json_value_or(j, "epochs_per_s", 0.0),
                  json_value_or(j, "last_commit_ms_ago", -1ll));
      if (j.contains("protection")) std::printf("  %s", json_value_or(j, "protection", "").c_str());
      if (j.contains("frozen_ms_avg")) {
        std::printf("  frozen %.1f ms avg %.1f p50 %.1f p99  %.0f bytes/epoch",
                    json_value_or(j, "frozen_ms_avg", 0.0), json_value_or(j, "frozen_ms_p50", 0.0),
                    json_value_or(j, "frozen_ms_p99", 0.0),
                    json_value_or(j, "epoch_bytes_avg", 0.0));
      }
      if (j.contains("fast_epochs")) {
        std::printf("  %llu fast of %llu epochs",
                    static_cast<unsigned long long>(json_value_or(j, "fast_epochs", 0ull)),
                    static_cast<unsigned long long>(json_value_or(j, "epochs", 0ull)));
      }
      if (j.contains("disk_bytes_avg"))
        std::printf("  disk %.0f bytes/epoch", json_value_or(j, "disk_bytes_avg", 0.0));
      if (j.contains("lag_epochs")) std::printf("  lag %lld", json_value_or(j, "lag_epochs", 0ll));
      if (j.contains("epochs_in_flight"))
        std::printf("  %lld in flight", json_value_or(j, "epochs_in_flight", 0ll));
      std::printf("\n");
      for (const auto& slow : json_value_or(j, "slow_path_epochs", nlohmann::json::array())) {
        if (slow.is_string())
          std::printf("           slow path: %s\n", slow.get<std::string>().c_str());
      }
      for (const auto& alert : json_value_or(j, "alerts", nlohmann::json::array())) {
        if (alert.is_string())
          std::printf("           alert: %s\n", alert.get<std::string>().c_str());
      }
    }
  }
  std::fflush(stdout);
  *exit_code = 0;
}

void switchover(const HaArgs& a, int* exit_code) {
  Result<ha::HaConfig> c = ha::load_ha_config(a.config);
  if (!c.ok()) {
    *exit_code = report_failure(c.status());
    return;
  }
  // The primary is whichever peer says so.
  for (const ha::PeerConfig& p : c->peers) {
    Result<std::string> s = ask(*c, a, p, m::HaStatus{}, std::chrono::seconds(3));
    if (!s.ok() || s->find("\"role\":\"primary\"") == std::string::npos) continue;
    Result<std::string> r = ask(*c, a, p, m::HaSwitchover{}, std::chrono::seconds(90));
    if (!r.ok()) {
      *exit_code = report_failure(r.status());
      return;
    }
    std::printf("%s\n", r->c_str());
    std::fflush(stdout);
    *exit_code = 0;
    return;
  }
  *exit_code = report_failure(Status::NotFound("no peer of the pair says it is the primary"));
}

}  // namespace

void register_ha(CLI::App& app, int* exit_code) {
  auto* ha = app.add_subcommand("ha", "Inspect and steer a relived HA pair");
  ha->require_subcommand(1);
  auto a = std::make_shared<HaArgs>();
  auto add_common = [&](CLI::App* cmd) {
    cmd->add_option("--config", a->config, "The pair's TOML config")->required();
    cmd->add_option("--name", a->name, "Peer whose key to authenticate with (default: found)");
    cmd->add_flag("--insecure", a->insecure, "Plaintext (only if the pair runs --insecure)");
  };
  auto* st = ha->add_subcommand("status", "Roles, epoch rate, last commit, lag, protection");
  add_common(st);
  st->add_flag("--json", a->json, "Machine-readable output");
  st->callback([a, exit_code] { status(*a, exit_code); });
  auto* sw = ha->add_subcommand("switchover", "Planned role change without losing anything");
  add_common(sw);
  sw->callback([a, exit_code] { switchover(*a, exit_code); });
}

Status serve_ha(const std::string& config_path, const std::string& name,
                const std::string& state_dir, bool insecure, const std::atomic<bool>* stop,
                metrics::Registry* metrics) {
  RELIVE_ASSIGN_OR_RETURN(ha::HaConfig c, ha::load_ha_config(config_path));
  ha::HaNodeOptions o;
  o.config = std::move(c);
  o.name = name;
  o.state_dir = state_dir;
  o.insecure = insecure;
  o.metrics = metrics;
  RELIVE_ASSIGN_OR_RETURN(std::unique_ptr<ha::HaNode> node, ha::HaNode::create(std::move(o)));
  return node->run(stop);
}

}  // namespace relive::cli
