// The source's half of a VM log-shipping migration (relive migrate --vm --strategy
// log-shipping; docs/vm.md, migrate/vm_log_destination.h for the other half). The source QEMU
// must record (-icount ...,rr=record,rrfile=FILE, from boot). Rounds: relive reads the guest's
// instruction count (query-replay), waits until QEMU has written well past that point (its log is
// buffered by stdio), and ships the log's new bytes with that count, up to which the destination
// may replay. Switch-over: `stop`, the final count, `quit` (the only way to make QEMU write the
// rest of its log), the rest of the log; the destination replays to the end and goes live.
// Before the quit any failure leaves the source VM running; after it there is no way back.
#pragma once

#include "relive/migrate.h"

namespace relive::migrate {

Result<MigrateReport> run_vm_log_shipping(const MigrateOptions& options);

}  // namespace relive::migrate
