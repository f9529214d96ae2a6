// The source's half of a VM migration (relive migrate --vm QMP_SOCKET): QEMU migrates itself,
// QEMU to QEMU over its own TLS; relive asks the destination's relived for a receiving QEMU,
// sets the capabilities and parameters, starts and watches the migration through QMP, turns it
// to post-copy when asked to or when pre-copy stops converging (vm_convergence.h), and commits
// the switch-over. Any failure before the destination runs the VM cancels the migration and
// leaves the source VM running as it was; after the switch to post-copy there is no way back
// (the source no longer holds the whole VM), and the error says so.
#pragma once

#include "relive/migrate.h"

namespace relive::migrate {

Result<MigrateReport> run_vm_migration(const MigrateOptions& options);

}  // namespace relive::migrate
