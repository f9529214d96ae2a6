// Where an incoming migration stands, and which of the source's commands may come next. The
// destination's sessions (destination.cc, vm_destination.cc, vm_log_destination.cc) call
// step() before acting on a command: a command out of order (two restores, a commit before the
// restore, a log round after the last one) is refused and leaves the state as it was, so
// nothing the session holds is touched by it. The transitions are all in next_state().
#pragma once

#include <string_view>

#include "relive/status.h"
#include "security/channel.h"
#include "security/request_gate.h"
#include "wire/migration_types.h"

namespace relive::migrate {

// Which kind of incoming migration: each has its own order of commands.
enum class DestinationFlow {
  kProcess,  // a process tree or runc container: files, pages, logs, [verify], restore, commit
  kVm,       // a VM: QEMU's own stream, progress reports, commit
  kVmLog,    // a VM by log shipping: log rounds, the final round (it runs here then), commit
};

enum class DestinationState {
  kReceiving,  // after begin: the workload's state arrives
  kVerified,   // CR/TR: the replay is verified; differing pages may still arrive
  kRestored,   // restored here, frozen (VM log shipping: the final log round replayed)
  kCommitted,  // running here; nothing more may come
};

const char* destination_state_name(DestinationState s);

class DestinationPhase {
 public:
  explicit DestinationPhase(DestinationFlow flow) : flow_(flow) {}

  // Ok and in the command's next state when `c` may come now; otherwise InvalidArgument naming
  // the command and the state, and the state is unchanged. An abort is always in order.
  Status step(const migration::Command& c);
  DestinationState state() const { return state_; }

 private:
  DestinationFlow flow_;
  DestinationState state_ = DestinationState::kReceiving;
};

// Records an out-of-order command's refusal (`why`, from step()) in the audit log through
// `gate` (may be null) and returns `why`.
Status refuse_command(security::RequestGate* gate, const security::PeerIdentity& peer,
                      const migration::Command& c, const Status& why);

}  // namespace relive::migrate
