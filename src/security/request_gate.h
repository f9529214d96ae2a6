// RequestGate: the one place where a received control message is admitted or refused. It ties
// the replay check to the audit record, so no request runs unless its acceptance is on disk,
// and no refusal goes unrecorded.
#pragma once

#include <cstdint>
#include <string_view>

#include "relive/status.h"
#include "security/audit_log.h"
#include "security/channel.h"
#include "security/replay_guard.h"
#include "wire/protocol_types.h"

namespace relive::security {

class RequestGate {
 public:
  // `guard` and `log` must outlive the gate.
  RequestGate(ReplayGuard* guard, AuditLog* log) : guard_(guard), log_(log) {}

  // Thread-safe without a lock of its own (the guard and the log each lock briefly): an HA node
  // and relived admit requests from several connections at once, and none waits for another's
  // audit fsync.
  // Ok when `message` (a Hello or Request) from `peer` is fresh (see ReplayGuard); the
  // decision is audited either way. Aborted with the reason on refusal, also
  // when the audit record could not be written (failing closed).
  Status admit(const PeerIdentity& peer, const protocol::Message& message, int64_t now_ns);

  // Records that an admitted request `command` from `peer` was refused afterwards by whoever
  // serves it (e.g. a migration command out of order), with `reason`. Returns the audit log's
  // failure, if any; the refusal stands either way.
  Status refuse(const PeerIdentity& peer, std::string_view command, std::string_view reason,
                int64_t now_ns);

 private:
  Status decide(const PeerIdentity& peer, const protocol::Message& message, int64_t now_ns);

  ReplayGuard* guard_;
  AuditLog* log_;
};

}  // namespace relive::security
