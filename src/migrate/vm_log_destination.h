// The destination's half of a VM log-shipping migration (relive migrate --vm --strategy
// log-shipping; docs/vm.md): the source QEMU records (-icount rr=record), the log arrives here in
// rounds, and a QEMU started from the same command line replays it (rr=replay), held back by
// `replay-break` at an instruction count the source knows to be wholly in the shipped log (a
// replay that reaches the end of its log exits: "error reading the replay data"). The last round
// follows the source's `quit`: the replay runs to the log's end (the quit, paused there by
// `-action shutdown=pause`), saves an internal snapshot (`savevm`), and a second QEMU, recording
// a new log, loads it (`-loadvm`): QEMU crashes migrating out of a replaying VM, and refuses a
// snapshot with a "replay" section in a QEMU that neither records nor replays. Until the commit
// both QEMUs live under guards: a failure or relived's death kills them.
#pragma once

#include "migrate/destination.h"
#include "wire/migration_types.h"

namespace relive::migrate {

Result<DestinationOutcome> serve_vm_log_shipping(transfer::Link* link, security::RequestGate* gate,
                                                 const DestinationOptions& options,
                                                 const migration::Begin& begin);

}  // namespace relive::migrate
