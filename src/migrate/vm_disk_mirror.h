// DiskMirrors: the source's half of a VM's storage migration. For each disk, an NBD client node
// (QEMU's TLS, the same credentials as the migration stream) on the destination's export of the
// image it created, and a mirror job from the disk into it: sync=full, or sync=top for a qcow2
// overlay whose base the destination has too. Memory migrates only once every mirror is ready
// (in sync, copying each new write as it happens); after the source VM stopped for good,
// complete() ends each mirror without pivoting (block-job-cancel of a ready job), which leaves
// the destination's image a copy of the disk as of the stop, and only then may the destination
// run. abort() instead cancels them outright and drops the NBD nodes: the source VM keeps
// running on its own disks, as it always did.
//
// The libvirt sequence (mirror to NBD, wait ready, migrate, cancel the mirrors on the source
// once migration completed, destination stops its NBD server before cont).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "drivers/qemu/qmp_client.h"
#include "relive/migrate.h"
#include "wire/migration_types.h"

namespace relive::migrate {

struct NbdTarget {
  std::string host;  // the destination's address
  uint16_t port = 0;
  // The tls-creds-x509 object to connect with, and the name the destination's certificate must
  // carry; both "" for plaintext.
  std::string tls_creds;
  std::string tls_hostname;
};

class DiskMirrors {
 public:
  // `qmp` must outlive this object.
  DiskMirrors(qemu::QmpClient* qmp, std::vector<migration::VmDisk> disks)
      : qmp_(qmp), disks_(std::move(disks)) {}
  ~DiskMirrors() { abort(); }
  DiskMirrors(const DiskMirrors&) = delete;
  DiskMirrors& operator=(const DiskMirrors&) = delete;

  bool empty() const { return disks_.empty(); }
  const std::vector<migration::VmDisk>& disks() const { return disks_; }

  // Connects to every export and starts every mirror.
  Status start(const NbdTarget& target);
  // One look at the jobs: true once every mirror is ready; an error (with QEMU's reason) when
  // one of them failed, e.g. because the destination went away.
  Result<bool> all_ready();
  // The source VM is stopped: ends every mirror in sync (see above), waiting up to `timeout`.
  Status complete(std::chrono::milliseconds timeout);
  // Cancels whatever still runs and removes the NBD nodes. Idempotent; best effort.
  void abort();

  // One per disk, filled in by complete().
  const std::vector<DiskReport>& reports() const { return reports_; }

 private:
  // query-jobs' entry for `id`; null when QEMU has no such job.
  Result<nlohmann::json> job(const std::string& id);
  // Waits until job `id` concluded (or vanished): its final entry.
  Result<nlohmann::json> wait_concluded(const std::string& id, std::chrono::milliseconds timeout);
  void remove_nodes();
  // Destroys this host's TCP connections to the NBD server (ss -K): a mirror whose link went
  // silent holds its requests until TCP gives up (many minutes), and cancelling it waits for
  // them, stalling the guest's disk meanwhile; a destroyed socket fails them at once.
  void cut_connections();

  qemu::QmpClient* qmp_;
  std::vector<migration::VmDisk> disks_;
  std::vector<std::string> jobs_;   // started mirror jobs, by id
  std::vector<std::string> nodes_;  // added NBD client nodes
  std::vector<DiskReport> reports_;
  NbdTarget target_;
  std::chrono::steady_clock::time_point started_;
  bool done_ = false;  // completed or aborted
};

}  // namespace relive::migrate
