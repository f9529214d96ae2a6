// VmDiskTargets: the destination's half of a VM's storage migration. Before its QEMU starts,
// every check that can refuse the migration runs, so a refusal comes before anything is copied:
// formats and sizes, and for a qcow2 overlay the base, which must exist here under the same path
// with the same content hash. Then it creates one image per disk in the VM's directory
// (qemu-img, same format and virtual size; an overlay on the local base), and the QEMU command
// line is rewritten to run on them. Once QEMU runs, an NBD server (QEMU's TLS) exports each
// image writable under its drive id for the source's mirror; stop_exports() ends it before the
// VM runs here.
//
// With shared storage nothing is created: each image path must exist here, or the migration is
// refused.
//
// The images belong to this object until they are handed to the QEMU guard (files(), then
// hand_over()): from then on, the guard deletes them when QEMU dies unreleased (qemu_process.h),
// even when relived itself is killed.
#pragma once

#include <string>
#include <vector>

#include "drivers/qemu/qmp_client.h"
#include "relive/result.h"
#include "wire/migration_types.h"

namespace relive::migrate {

class VmDiskTargets {
 public:
  // Checks `disks` and, unless `shared`, creates their images under `dir`/disks.
  static Result<VmDiskTargets> prepare(const std::vector<migration::VmDisk>& disks, bool shared,
                                       const std::string& dir);

  VmDiskTargets(VmDiskTargets&& o) noexcept;
  VmDiskTargets& operator=(VmDiskTargets&&) = delete;
  ~VmDiskTargets();

  // `args` with every copied disk's -drive on its new image.
  Result<std::vector<std::string>> rewrite(std::vector<std::string> args) const;
  // The images created here.
  const std::vector<std::string>& files() const { return files_; }
  void hand_over() { handed_over_ = true; }
  bool copies() const { return !files_.empty(); }

  // Starts QEMU's NBD server on a free port (TLS with `tls_creds` unless it is "") and exports
  // every created image writable under its drive id. The port.
  Result<uint16_t> export_all(qemu::QmpClient& qmp, const std::string& tls_creds) const;
  // Ends the exports and the server (nbd-server-stop).
  static Status stop_exports(qemu::QmpClient& qmp);

 private:
  VmDiskTargets() = default;
  Status check(const migration::VmDisk& d, bool shared) const;
  Status create(const migration::VmDisk& d, const std::string& dir);

  std::vector<std::string> devices_;  // copied disks, in files_' order
  std::vector<std::string> files_;
  bool handed_over_ = false;
};

}  // namespace relive::migrate
