// Live migration of a running process or process tree to another host's relived: stop-copy,
// pre-copy (memory rounds tracked by relive's own dirty-page tracking), post-copy (CRIU lazy
// pages), CR/TR-Motion (checkpoint, then log shipping with replay at the destination), or auto.
// The source stays primary until the destination confirms the workload runs there; any failure
// before that leaves the source running as it was.
//
// A QEMU virtual machine (vm_qmp set) migrates through QEMU's own migration (pre-copy,
// post-copy, or auto: pre-copy turning to post-copy when it stops converging), driven over QMP;
// the destination's relived starts the receiving QEMU (docs/vm.md).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "relive/result.h"

namespace relive {

struct MigrateOptions {
  pid_t pid = 0;              // root of the workload
  bool process_tree = false;  // the whole tree (relive container migrate) vs one process
  // relive container migrate NAME: the runc container NAME (then pid is found by runc; the
  // container keeps its name at the destination).
  std::string runc_name;
  std::string to_host;  // numeric address of the destination's relived
  uint16_t to_port = 0;
  std::string strategy = "auto";  // stop-copy | precopy | postcopy | crtr | auto
  std::string name;               // a label for the workload at the destination
  // TLS: this host's name and key dir (security/keys.h); the destination must present a
  // certificate for `peer_name` when that is set.
  std::string tls_dir;
  std::string node_name;
  std::string peer_name;
  bool insecure = false;        // plaintext; the destination must be insecure too
  std::string service_address;  // "198.18.0.100/24": moves with the workload; "" for none
  bool tcp_established = false;
  uint64_t log_threshold = 1024;         // crtr: freeze when a round's log is smaller
  uint64_t dirty_threshold_pages = 256;  // precopy: freeze when a round dirties fewer pages
  int max_rounds = 30;
  std::chrono::milliseconds max_time{60000};  // of iterative rounds, then freeze anyway
  std::string work_dir;  // parent of the source's temporary images dir; empty: /dev/shm
  std::chrono::seconds criu_timeout{300};
  // How long any one exchange with the destination may take (a reply, a bulk segment) before
  // the link counts as cut and the migration is rolled back.
  std::chrono::milliseconds io_timeout{60000};
  // Bytes per second that may cross the link for this migration; 0: no cap. Processes and
  // containers: everything the source sends (relive's channel, and post-copy's page-server
  // stream through a metering relay), one shared budget. VMs: QEMU's max-bandwidth.
  uint64_t max_bandwidth = 0;
  // relive migrate --vm: the source QEMU's QMP socket. Strategies: precopy, postcopy, auto.
  std::string vm_qmp;
  uint64_t vm_downtime_limit_ms = 300;  // QEMU's downtime-limit for the final pre-copy pass
  bool vm_xbzrle = false;               // delta-compress pages resent in pre-copy
  int vm_multifd_channels = 0;          // > 0: multifd with this many connections
  // VMs: the disks stay where they are, on storage both hosts share (each image path must
  // exist at the destination). Otherwise (the default) the destination creates its own images
  // and the source mirrors every disk into them over NBD (QEMU's TLS) before switching over.
  bool vm_shared_storage = false;
  // Called with one line of progress at each step (phase, round, bytes, rates).
  std::function<void(const std::string&)> progress;
};

// One VM disk copied by storage migration: what its mirror sent and how long it ran (from its
// start to its end after the switch-over).
struct DiskReport {
  std::string device;  // the drive's id
  std::string format;  // raw, qcow2
  std::string mode;    // "full", or "top" (a qcow2 overlay on a base both hosts have)
  uint64_t bytes = 0;  // the mirror job's offset at its end
  uint64_t virtual_size = 0;
  double ms = 0;
};

struct MigrateReport {
  std::string strategy;
  std::string reason;      // why this strategy (auto), or "requested"
  double downtime_ms = 0;  // frozen at the source until running at the destination
  double total_ms = 0;
  uint64_t bytes_total = 0;  // on the wire, all phases
  std::map<std::string, uint64_t> bytes_by_phase;
  int rounds = 0;
  // The cap asked for (0: none), and what the source sent through its metered link: bytes, the
  // time it was busy sending them (idle time between transfers excluded: the dump, the
  // destination's work), and their ratio, the achieved rate in bytes/s. Processes and
  // containers; VMs report QEMU's own figures in `vm`.
  uint64_t max_bandwidth = 0;
  uint64_t link_bytes = 0;
  double link_busy_ms = 0;
  double link_rate = 0;
  double restore_ms = 0;  // the destination's restore
  // The destination watched the resumed workload run this long before confirming the commit
  // (tracee/resume_check.h); the workload already ran, so it is not part of the downtime.
  double confirm_ms = 0;
  pid_t destination_pid = 0;
  // VMs: QEMU's own figures (qemu_downtime_ms, setup_ms, mbps, ...); empty for processes.
  std::map<std::string, double> vm;
  std::string vm_dir;  // VMs: the VM's directory at the destination (its QMP socket, log)
  std::vector<DiskReport> disks;  // VMs with storage migration: one per disk
};

Result<MigrateReport> run_migration(const MigrateOptions& options);

std::string migrate_report_text(const MigrateReport& report);
std::string migrate_report_json(const MigrateReport& report);

}  // namespace relive
