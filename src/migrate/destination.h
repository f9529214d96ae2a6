// The destination's half of a migration, run by relived for each incoming connection: it
// receives the workload (images, pages, logs), restores it frozen, and lets it run only when
// the source commits. Until then a failure or a lost link ends in nothing: the restored copy is
// killed, the service address given back, and the source (which never stopped being primary)
// resumes. After the commit the workload is this host's.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "migrate/migration_metrics.h"
#include "relive/result.h"
#include "security/request_gate.h"
#include "transfer/link.h"

namespace relive::migrate {

// What a server holds while it receives one migration (e.g. a slot among its concurrent
// migrations and the workload's name); destroying it gives them back.
class ArrivalClaim {
 public:
  virtual ~ArrivalClaim() = default;
};

// Asked with the workload's name once the source's migrate.begin has been admitted: an error
// refuses the migration (the source gets it as the answer to its begin); the claim returned is
// held until serve_migration returns. Called on the thread that serves the migration.
using AdmitArrival = std::function<Result<std::unique_ptr<ArrivalClaim>>(const std::string& name)>;

struct DestinationOptions {
  std::string node_name;
  std::string work_root;  // per-migration work dirs go here; empty: /dev/shm (image_dir.h)
  // CRIU's logs of each migration are kept in <log_root>/logs/relive-incoming-*/ (the newest
  // 100 of them) once its work dir is removed; empty: not kept.
  std::string log_root;
  std::string tls_dir;  // this host's keys, for CRIU's own TLS page-server link
  bool insecure = false;
  // Restore with CRIU lazy pages served from the local images (the freeze then no longer
  // includes copying the memory in). Post-copy always pulls from the source.
  bool lazy_local = true;
  std::chrono::seconds criu_timeout{300};
  // runc containers (runc_destination.h): runc's --root (empty: runc's default), the parent of
  // their bundles (empty: <work_root>/runc-bundles), and the network namespace that replaces a
  // netns path in their config.json (empty: relived's own).
  std::string runc_root;
  std::string runc_bundles;
  std::string runc_netns;
  // VMs (vm_destination.h): each migrated VM gets a directory here, QEMU's working directory
  // and home of its monitor socket and log (empty: /var/lib/relive/vms).
  std::string vm_root;
  // Empty: every migration is admitted.
  AdmitArrival admit;
  // Where each migration is counted (not owned; must outlive serve_migration); null: nowhere.
  MigrationMetrics* metrics = nullptr;
};

struct DestinationOutcome {
  std::string name;
  std::string strategy;
  pid_t root_pid = 0;  // global PID of the migrated root, now running here
  pid_t init_pid = 0;  // its PID namespace's init (a runc container: its init, = root_pid)
  std::string bundle;  // a runc container: its bundle here
  std::string vm_dir;  // a VM: its directory here (QEMU's working directory, qemu.log)
  std::string vm_qmp;  // a VM: its QMP socket here
  double restore_ms = 0;
  double confirm_ms = 0;  // from resuming the workload to seeing it run (commit)
};

// Serves one migration on `link`. Ok once the workload runs here, committed.
Result<DestinationOutcome> serve_migration(transfer::Link* link, security::RequestGate* gate,
                                           const DestinationOptions& options);

}  // namespace relive::migrate
