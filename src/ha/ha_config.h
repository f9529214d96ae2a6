// HaConfig: the relived HA pair's configuration, read from a TOML file (see examples/ha-pair.toml
// for every key). Parsing validates everything up front: a bad or missing value is rejected with
// Status::InvalidArgument naming the key ("etcd.lease_ttl_s: must be between 1 and 3600, got 0"),
// so relived never starts half-configured. Unknown keys are rejected too (a typo must not silently
// fall back to a default).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "relive/result.h"

namespace relive::ha {

struct PeerConfig {
  std::string name;  // [a-z0-9_-]{1,32}, unique in the pair
  std::string host;  // as written: IPv4, [IPv6] or a DNS name
  uint16_t port = 0;
};

struct EtcdConfig {
  std::vector<std::string> endpoints;  // "http://HOST:PORT", tried in order
  std::string lease_key;               // absolute, e.g. "/relive/ha/redis/primary"
  uint32_t lease_ttl_s = 5;            // etcd rounds smaller TTLs up to its minimum
  // A silent primary's key may be taken this long after it was last rewritten, before etcd
  // expires its lease (etcd_lease.h); 0: only at expiry. Default: half the TTL.
  uint32_t fence_ms = 2500;
};

// What relived protects: a process tree (checkpointed by CRIU) or a QEMU virtual machine
// (stopped for a moment, its RAM diffed from a shared memory file, its devices saved by QEMU).
enum class WorkloadKind { kProcess, kVm };

// A VM disk, from a `-drive file=PATH,format=raw|qcow2,id=ID[,...]` of workload.command. The
// primary's QEMU writes PATH at once; the backup keeps a raw copy of what the guest sees, updated
// only when an epoch commits, and a VM it restores runs on that copy (vm_disks.h).
struct VmDiskConfig {
  std::string id;      // the drive's id= ([A-Za-z0-9._-], unique)
  std::string file;    // absolute path of the image a cold start runs on
  std::string format;  // "raw" or "qcow2"
};

struct WorkloadConfig {
  WorkloadKind kind = WorkloadKind::kProcess;
  std::vector<std::string> command;  // argv; command[0] is an absolute path
  std::string directory;             // absolute working directory
  std::string service_address;       // IPv4 address of the service, e.g. "198.18.5.10"
  uint8_t service_prefix_len = 32;   // from the CIDR "198.18.5.10/24"
  std::string netns;                 // network namespace name (ip netns), created by relived
  uint16_t output_queue = 0;         // NFQUEUE number used to hold the workload's output
  // VMs only: where the guest RAM files live (a tmpfs: QEMU maps them shared), and the guest's
  // RAM size, read from command's -m.
  std::string ram_dir = "/dev/shm";
  uint64_t ram_bytes = 0;
  std::vector<VmDiskConfig> disks;  // VMs only, in command-line order
};

struct LimitsConfig {
  uint64_t max_epoch_bytes = 256ull << 20;  // one epoch's dirty state, before it is refused
  uint32_t max_held_packets = 65536;        // output packets held while an epoch is in flight
  // Process workloads: epochs captured and not yet acknowledged by the backup (the next epoch
  // is captured while the last one travels); 1 ships each before the next is captured.
  uint32_t max_epochs_in_flight = 2;
};

struct HaConfig {
  std::vector<PeerConfig> peers;  // exactly two
  std::string tls_dir;            // absolute; made by `relive keys init`
  uint32_t epoch_ms = 25;
  uint32_t heartbeat_ms = 100;
  uint32_t failure_timeout_ms = 1000;  // at least 2 heartbeats
  EtcdConfig etcd;
  WorkloadConfig workload;
  LimitsConfig limits;

  // The peer called `name`, or nullptr.
  const PeerConfig* peer(std::string_view name) const;
};

// Parses and validates TOML text. `source` names the text in error messages (a path).
Result<HaConfig> parse_ha_config(std::string_view toml_text, std::string_view source = "config");
// Reads and parses the file at `path`.
Result<HaConfig> load_ha_config(const std::string& path);

}  // namespace relive::ha
