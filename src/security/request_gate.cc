#include "security/request_gate.h"

#include <variant>

namespace relive::security {
namespace {

AuditRecord describe(const PeerIdentity& peer, const protocol::Message& m, int64_t now_ns) {
  AuditRecord r;
  r.time_ns = now_ns;
  r.peer_subject = peer.subject;
  r.peer_address = peer.address;
  r.kind = protocol::kind_name(m.kind());
  if (const auto* q = std::get_if<protocol::Request>(&m.body)) {
    r.command = q->command;
    r.nonce_hex = protocol::nonce_hex(q->nonce);
  } else if (const auto* h = std::get_if<protocol::Hello>(&m.body)) {
    r.nonce_hex = protocol::nonce_hex(h->nonce);
  }
  return r;
}

}  // namespace

Status RequestGate::decide(const PeerIdentity& peer, const protocol::Message& m, int64_t now_ns) {
  if (const auto* q = std::get_if<protocol::Request>(&m.body)) {
    return guard_->check(q->nonce, q->timestamp_ns, now_ns);
  }
  if (const auto* h = std::get_if<protocol::Hello>(&m.body)) {
    return guard_->check(h->nonce, h->timestamp_ns, now_ns);
  }
  return Status::Aborted(std::string("request refused: a ") + protocol::kind_name(m.kind()) +
                         " is a reply, not a request");
}

Status RequestGate::admit(const PeerIdentity& peer, const protocol::Message& m, int64_t now_ns) {
  Status decision = decide(peer, m, now_ns);
  AuditRecord record = describe(peer, m, now_ns);
  record.accepted = decision.ok();
  record.reason = decision.ok() ? "" : decision.message();
  Status logged = log_->append(record);
  if (!logged.ok()) {
    return Status::Aborted("request refused: cannot record it in the audit log: " +
                           logged.to_string());
  }
  return decision;
}

Status RequestGate::refuse(const PeerIdentity& peer, std::string_view command,
                           std::string_view reason, int64_t now_ns) {
  AuditRecord record;
  record.time_ns = now_ns;
  record.peer_subject = peer.subject;
  record.peer_address = peer.address;
  record.kind = protocol::kind_name(protocol::MessageKind::kRequest);
  record.command = std::string(command);
  record.accepted = false;
  record.reason = std::string(reason);
  return log_->append(record);
}

}  // namespace relive::security
