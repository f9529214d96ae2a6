// What storage migration needs to know about a VM's disks, read from the source QEMU
// (query-block): each drive's id, image, format and size, and for a qcow2 overlay its base and
// the base's content hash, which the destination compares with its own copy of the base before
// anything is copied (only the overlay then travels, like libvirt's --copy-storage-inc).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "drivers/qemu/qmp_client.h"
#include "relive/result.h"
#include "wire/migration_types.h"

namespace relive::migrate {

// The disks in a query-block answer (drives without a medium are skipped), backing_hash left
// empty. With `for_copy`, InvalidArgument for what storage migration cannot copy: a drive
// without an id (-blockdev), a format other than raw and qcow2, a base that has a base of its
// own; without it (shared storage: only the paths matter) such disks are listed as they are,
// and drives without an id are skipped. Corruption for an answer that is not what QEMU
// documents.
Result<std::vector<migration::VmDisk>> vm_disks_from_query_block(const nlohmann::json& blocks,
                                                                 bool for_copy = true);

// XXH3-128 of the file's contents, 32 hex digits (not cryptographic: it tells a different base
// from the same one, it does not defend against a forged one).
Result<std::string> hash_image_file(const std::string& path);

// vm_disks_from_query_block() of the VM behind `qmp`; with `for_copy`, every base hashed.
Result<std::vector<migration::VmDisk>> describe_vm_disks(qemu::QmpClient& qmp, bool for_copy);

}  // namespace relive::migrate
