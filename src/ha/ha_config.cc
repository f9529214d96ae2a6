#include "ha/ha_config.h"

#include <algorithm>
#include <set>

#include "common/file_util.h"
#include "common/host_port.h"
#include "common/ipv4_cidr.h"
#include "common/safe_name.h"
#include "common/toml_section.h"
#include "drivers/qemu/vm_command_line.h"
#include "ha/http_client.h"

namespace relive::ha {
namespace {

using Section = TomlSection;

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
  // Half the TTL by default; 0 leaves the hand-over to etcd's expiry alone.
  RELIVE_ASSIGN_OR_RETURN(uint64_t fence, s.integer("fence_ms", ttl * 500, 0, ttl * 1000));
  if (fence > 0 && fence < 100)
    return s.error("fence_ms", "must be 0 or at least 100, got " + std::to_string(fence));
  e->fence_ms = static_cast<uint32_t>(fence);
  return s.finish();
}

// Every -drive of a VM's command line, each of which relived replicates (vm_disks.h): it must
// name its image (an absolute path), its format (raw or qcow2) and an id, and must not write
// somewhere else than its image (snapshot=on writes to a temporary file nobody replicates).
Status parse_vm_disks(Section& s, WorkloadConfig* w) {
  std::set<std::string> ids;
  for (const std::string& d : qemu::option_arguments(w->command, "drive")) {
    auto bad = [&](const std::string& why) {
      return s.error("command", "-drive " + d + ": " + why);
    };
    VmDiskConfig disk;
    disk.id = qemu::suboption(d, "id");
    disk.file = qemu::suboption(d, "file");
    disk.format = qemu::suboption(d, "format");
    if (disk.id.empty()) return bad("needs an id= (relived names the disk by it)");
    if (Status n = check_name("drive id", disk.id, 32); !n.ok()) return bad(n.message());
    if (!ids.insert(disk.id).second) return bad("duplicate drive id '" + disk.id + "'");
    if (disk.file.empty() || disk.file.front() != '/')
      return bad("file= must be an absolute path to a raw or qcow2 image");
    if (disk.format != "raw" && disk.format != "qcow2")
      return bad("format= must be raw or qcow2 (QEMU's guess is not replicated)");
    if (d.find(",,") != std::string::npos) return bad("escaped commas are not supported");
    for (const char* key : {"snapshot", "backing", "media"}) {
      if (!qemu::suboption(d, key).empty())
        return bad(std::string(key) + "= is not supported on a replicated disk");
    }
    w->disks.push_back(std::move(disk));
  }
  return Status::Ok();
}

// A VM's command line: relived supplies the monitor, the network backend and the RAM backend,
// so the command must not; disks come as -drive (parse_vm_disks), other block options are
// refused rather than failed over without their writes.
Status check_vm_command(Section& s, WorkloadConfig* w) {
  if (Result<std::vector<std::string>> m = qemu::migratable_args(w->command); !m.ok()) {
    return s.error("command", m.status().message());
  }
  std::set<std::string> names = qemu::option_names(w->command);
  for (const char* o : {"qmp", "qmp-pretty", "monitor", "mon", "incoming", "daemonize", "netdev",
                        "net", "nic", "loadvm", "pidfile"}) {
    if (names.count(o)) {
      return s.error("command",
                     std::string("-") + o +
                         " is not allowed in a VM workload: relived provides the monitor, the "
                         "network backend (netdev relive-net) and the RAM (see docs/ha.md)");
    }
  }
  for (const char* o : {"hda", "hdb", "hdc", "hdd", "cdrom", "blockdev", "snapshot", "mtdblock",
                        "sd", "pflash", "fda", "fdb"}) {
    if (names.count(o)) {
      return s.error("command", std::string("-") + o +
                                    " is not supported in a VM workload: give each disk as -drive "
                                    "file=/ABSOLUTE/PATH,format=raw|qcow2,id=ID[,if=...] (relived "
                                    "replicates those)");
    }
  }
  RELIVE_RETURN_IF_ERROR(parse_vm_disks(s, w));
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
  if (!root.has("limits")) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(Section s, root.table("limits"));
  RELIVE_ASSIGN_OR_RETURN(l->max_epoch_bytes,
                          s.integer("max_epoch_bytes", l->max_epoch_bytes, 1 << 20, 64ull << 30));
  RELIVE_ASSIGN_OR_RETURN(uint64_t p,
                          s.integer("max_held_packets", l->max_held_packets, 16, 1 << 20));
  l->max_held_packets = static_cast<uint32_t>(p);
  RELIVE_ASSIGN_OR_RETURN(uint64_t f,
                          s.integer("max_epochs_in_flight", l->max_epochs_in_flight, 1, 16));
  l->max_epochs_in_flight = static_cast<uint32_t>(f);
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
  RELIVE_ASSIGN_OR_RETURN(toml::table doc, parse_toml(toml_text, source));
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
