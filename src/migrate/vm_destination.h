// The destination's half of a VM migration (relive migrate --vm), run by relived's session when
// migrate.begin names a VM: it starts QEMU from the command line the source sent (see
// drivers/qemu/vm_command_line.h) paused and waiting for the migration stream, tells the source
// where that stream goes, and lets the VM run when the source commits. Until then QEMU lives
// under a guard (drivers/qemu/qemu_process.h): a failure, an abort, a lost link or relived's own
// death kill it, and the source VM, which never stopped being primary, carries on.
#pragma once

#include "migrate/destination.h"
#include "wire/migration_types.h"

namespace relive::migrate {

// Serves the VM migration `begin` announced (already admitted on `link`, not yet answered).
Result<DestinationOutcome> serve_vm_migration(transfer::Link* link, security::RequestGate* gate,
                                              const DestinationOptions& options,
                                              const migration::Begin& begin);

}  // namespace relive::migrate
