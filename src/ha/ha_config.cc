#include "ha/ha_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <set>

#include "common/file_util.h"
#include "common/host_port.h"
#include "common/ipv4_cidr.h"
#include "common/safe_name.h"
#include "drivers/qemu/vm_command_line.h"
#include "ha/http_client.h"

namespace relive::ha {
namespace {

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return "a date or time";
  }
}

// One TOML table being read: every lookup is by key, errors name the full dotted key and its line,
// and finish() rejects keys nobody asked for.
class Section {
 public:
  Section(const toml::table& t, std::string prefix) : table_(t), prefix_(std::move(prefix)) {}

  std::string key_name(std::string_view key) const { return prefix_ + std::string(key); }

  Status error(std::string_view key, const std::string& what) const {
    std::string where = key_name(key);
    if (const toml::node* n = table_.get(key)) {
      where += " (line " + std::to_string(n->source().begin.line) + ")";
    }
    return Status::InvalidArgument(where + ": " + what);
  }

  // Nullptr when absent (then `required` makes it an error, reported through `status`).
  const toml::node* find(std::string_view key, bool required, Status* status) {
    seen_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (!n && required) *status = Status::InvalidArgument(key_name(key) + ": missing");
    return n;
  }

  Result<uint64_t> integer(std::string_view key, std::optional<uint64_t> dflt, uint64_t lo,
                           uint64_t hi) {
    Status st;
    const toml::node* n = find(key, !dflt.has_value(), &st);
    if (!st.ok()) return st;
    if (!n) return *dflt;
    if (!n->is_integer())
      return error(key, std::string("must be an integer, got ") + type_name(*n));
    int64_t v = n->as_integer()->get();
    if (v < 0 || static_cast<uint64_t>(v) < lo || static_cast<uint64_t>(v) > hi) {
      return error(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                            ", got " + std::to_string(v));
    }
    return static_cast<uint64_t>(v);
  }

  Result<std::string> string(std::string_view key, std::optional<std::string> dflt = {}) {
    Status st;
    const toml::node* n = find(key, !dflt.has_value(), &st);
    if (!st.ok()) return st;
    if (!n) return *dflt;
    if (!n->is_string()) return error(key, std::string("must be a string, got ") + type_name(*n));
    std::string s = n->as_string()->get();
    if (s.empty()) return error(key, "must not be empty");
    return s;
  }

  // A non-empty array of strings; elements may be empty strings only when `allow_empty`.
  Result<std::vector<std::string>> strings(std::string_view key, bool allow_empty = false) {
    Status st;
    const toml::node* n = find(key, true, &st);
    if (!st.ok()) return st;
    const toml::array* a = n->as_array();
    if (!a) return error(key, std::string("must be an array of strings, got ") + type_name(*n));
    if (a->empty()) return error(key, "must not be empty");
    std::vector<std::string> out;
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      if (!e.is_string() || (!allow_empty && e.as_string()->get().empty())) {
        return error(key, "element " + std::to_string(i) + " must be a " +
                              (allow_empty ? "string" : "non-empty string"));
      }
      out.push_back(e.as_string()->get());
    }
    return out;
  }

  Result<Section> table(std::string_view key) {
    Status st;
    const toml::node* n = find(key, true, &st);
    if (!st.ok()) return st;
    if (!n->is_table()) return error(key, std::string("must be a table, got ") + type_name(*n));
    return Section(*n->as_table(), key_name(key) + ".");
  }

  Status finish() const {
    for (const auto& [k, v] : table_) {
      if (!seen_.count(std::string(k.str()))) {
        return Status::InvalidArgument(key_name(k.str()) + " (line " +
                                       std::to_string(v.source().begin.line) + "): unknown key");
      }
    }
    return Status::Ok();
  }

  const toml::table& raw() const { return table_; }

 private:
  const toml::table& table_;
  std::string prefix_;
  std::set<std::string> seen_;
};

bool valid_name(std::string_view s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

Status parse_peers(Section& root, HaConfig* cfg) {
  Status st;
  const toml::node* n = root.find("peers", true, &st);
  RELIVE_RETURN_IF_ERROR(st);
  const toml::array* a = n->as_array();
  if (!a || !a->is_array_of_tables()) {
    return root.error("peers", "must be an array of tables ([[peers]])");
  }
  if (a->size() != 2) {
    return root.error("peers", "an HA pair has exactly 2 peers, got " + std::to_string(a->size()));
  }
  for (size_t i = 0; i < a->size(); ++i) {
    Section s(*a->get(i)->as_table(), "peers[" + std::to_string(i) + "].");
    PeerConfig p;
    RELIVE_ASSIGN_OR_RETURN(p.name, s.string("name"));
    if (!valid_name(p.name))
      return s.error("name", "must be 1-32 of [a-z0-9_-], got '" + p.name + "'");
    if (cfg->peer(p.name)) return s.error("name", "duplicate peer name '" + p.name + "'");
    RELIVE_ASSIGN_OR_RETURN(std::string addr, s.string("address"));
    Result<HostPort> hp = parse_host_port(addr);
    if (!hp.ok()) return s.error("address", hp.status().message() + ", got '" + addr + "'");
    p.host = hp->host;
    p.port = hp->port;
    RELIVE_RETURN_IF_ERROR(s.finish());
    cfg->peers.push_back(std::move(p));
  }
  return Status::Ok();
}

Status parse_etcd(Section& root, EtcdConfig* e) {
  RELIVE_ASSIGN_OR_RETURN(Section s, root.table("etcd"));
  RELIVE_ASSIGN_OR_RETURN(e->endpoints, s.strings("endpoints"));
  for (const std::string& ep : e->endpoints) {
    if (ep.rfind("http://", 0) != 0) {
      return s.error("endpoints",
                     "'" + ep + "' must start with http:// (TLS to etcd is not supported yet)");
    }
    Result<HttpEndpoint> parsed = parse_http_endpoint(ep);
    if (!parsed.ok()) return s.error("endpoints", parsed.status().message());
  }
  RELIVE_ASSIGN_OR_RETURN(e->lease_key, s.string("lease_key"));
  if (e->lease_key.front() != '/')
    return s.error("lease_key", "must start with '/', got '" + e->lease_key + "'");
  RELIVE_ASSIGN_OR_RETURN(uint64_t ttl, s.integer("lease_ttl_s", 5, 1, 3600));
  e->lease_ttl_s = static_cast<uint32_t>(ttl);
  return s.finish();
}

// A VM's command line: relived supplies the monitor, the network backend and the RAM backend,
// so the command must not; disks are not replicated yet, so a VM with one is refused rather
// than failed over without its writes.
Status check_vm_command(Section& s, WorkloadConfig* w) {
  if (Result<std::vector<std::string>> m = qemu::migratable_args(w->command); !m.ok()) {
    return s.error("command", m.status().message());
  }
  std::set<std::string> names = qemu::option_names(w->command);
  for (const char* o :
       {"qmp", "qmp-pretty", "monitor", "mon", "incoming", "daemonize", "netdev", "net", "nic",
        "drive", "hda", "hdb", "hdc", "hdd", "cdrom", "blockdev", "loadvm", "pidfile"}) {
    if (names.count(o)) {
      return s.error("command",
                     std::string("-") + o +
                         " is not allowed in a VM workload: relived provides the monitor, the "
                         "network backend (netdev relive-net) and the RAM; disks are not "
                         "replicated (see docs/ha.md)");
    }
  }
  bool nic = false;
  for (const std::string& a : w->command) {
    nic |= a.find("netdev=relive-net") != std::string::npos;
    if (a.find("memory-backend=") != std::string::npos) {
      return s.error("command",
                     "relived provides the guest RAM's memory backend: remove '" + a + "'");
    }
  }
  if (!nic) {
    return s.error("command",
                   "the VM needs a NIC on relived's network backend, e.g. -device "
                   "e1000,netdev=relive-net,mac=52:54:00:12:34:56");
  }
  Result<uint64_t> ram = qemu::memory_bytes(w->command);
  if (!ram.ok()) return s.error("command", ram.status().message());
  w->ram_bytes = *ram;
  return Status::Ok();
}

Status parse_workload(Section& root, WorkloadConfig* w) {
  RELIVE_ASSIGN_OR_RETURN(Section s, root.table("workload"));
  RELIVE_ASSIGN_OR_RETURN(std::string kind, s.string("kind", std::string("process")));
  if (kind != "process" && kind != "vm")
    return s.error("kind", "must be \"process\" or \"vm\", got '" + kind + "'");
  w->kind = kind == "vm" ? WorkloadKind::kVm : WorkloadKind::kProcess;
  RELIVE_ASSIGN_OR_RETURN(w->command, s.strings("command", /*allow_empty=*/true));
  if (w->command[0].empty() || w->command[0].front() != '/') {
    return s.error("command", "command[0] must be an absolute path, got '" + w->command[0] + "'");
  }
  if (w->kind == WorkloadKind::kVm) RELIVE_RETURN_IF_ERROR(check_vm_command(s, w));
  RELIVE_ASSIGN_OR_RETURN(w->ram_dir, s.string("ram_dir", std::string("/dev/shm")));
  if (w->ram_dir.front() != '/')
    return s.error("ram_dir", "must be an absolute path, got '" + w->ram_dir + "'");
  RELIVE_ASSIGN_OR_RETURN(w->directory, s.string("directory"));
  if (w->directory.front() != '/')
    return s.error("directory", "must be an absolute path, got '" + w->directory + "'");
  RELIVE_ASSIGN_OR_RETURN(std::string cidr, s.string("service_address"));
  Result<Ipv4Cidr> c = parse_ipv4_cidr(cidr, CidrPrefix::kRequired);
  if (!c.ok()) return s.error("service_address", c.status().message() + ", got '" + cidr + "'");
  w->service_address = c->address;
  w->service_prefix_len = c->prefix;
  RELIVE_ASSIGN_OR_RETURN(w->netns, s.string("netns"));
  // The name goes into `ip netns` argv and /run/netns/; "-<peer>" is appended (workload_network).
  if (Status n = check_name("network namespace", w->netns); !n.ok())
    return s.error("netns", n.message());
  RELIVE_ASSIGN_OR_RETURN(uint64_t q, s.integer("output_queue", 0, 0, 65534));
  w->output_queue = static_cast<uint16_t>(q);
  return s.finish();
}

Status parse_limits(Section& root, LimitsConfig* l) {
  if (!root.raw().get("limits")) {
    Status ignored;
    root.find("limits", false, &ignored);
    return Status::Ok();
  }
  RELIVE_ASSIGN_OR_RETURN(Section s, root.table("limits"));
  RELIVE_ASSIGN_OR_RETURN(l->max_epoch_bytes,
                          s.integer("max_epoch_bytes", l->max_epoch_bytes, 1 << 20, 64ull << 30));
  RELIVE_ASSIGN_OR_RETURN(uint64_t p,
                          s.integer("max_held_packets", l->max_held_packets, 16, 1 << 20));
  l->max_held_packets = static_cast<uint32_t>(p);
  return s.finish();
}

Status parse_root(Section& root, HaConfig* cfg) {
  RELIVE_RETURN_IF_ERROR(parse_peers(root, cfg));
  RELIVE_ASSIGN_OR_RETURN(cfg->tls_dir, root.string("tls_dir"));
  if (cfg->tls_dir.front() != '/')
    return root.error("tls_dir", "must be an absolute path, got '" + cfg->tls_dir + "'");
  RELIVE_ASSIGN_OR_RETURN(uint64_t epoch, root.integer("epoch_ms", 25, 1, 10000));
  RELIVE_ASSIGN_OR_RETURN(uint64_t hb, root.integer("heartbeat_ms", 100, 1, 60000));
  RELIVE_ASSIGN_OR_RETURN(uint64_t ft, root.integer("failure_timeout_ms", 1000, 2, 600000));
  cfg->epoch_ms = static_cast<uint32_t>(epoch);
  cfg->heartbeat_ms = static_cast<uint32_t>(hb);
  cfg->failure_timeout_ms = static_cast<uint32_t>(ft);
  if (ft < 2 * hb) {
    return root.error("failure_timeout_ms", "must be at least 2 * heartbeat_ms (" +
                                                std::to_string(2 * hb) + "), got " +
                                                std::to_string(ft));
  }
  RELIVE_RETURN_IF_ERROR(parse_etcd(root, &cfg->etcd));
  RELIVE_RETURN_IF_ERROR(parse_workload(root, &cfg->workload));
  RELIVE_RETURN_IF_ERROR(parse_limits(root, &cfg->limits));
  return root.finish();
}

}  // namespace

const PeerConfig* HaConfig::peer(std::string_view name) const {
  for (const PeerConfig& p : peers) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Result<HaConfig> parse_ha_config(std::string_view toml_text, std::string_view source) {
  toml::table doc;
  try {
    doc = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(
        std::string(source) + ":" + std::to_string(e.source().begin.line) + ":" +
        std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  HaConfig cfg;
  Section root(doc, "");
  Status st = parse_root(root, &cfg);
  if (!st.ok()) return st.with_context(source);
  return cfg;
}

Result<HaConfig> load_ha_config(const std::string& path) {
  RELIVE_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_ha_config(text, path);
}

}  // namespace relive::ha
