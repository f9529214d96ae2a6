#include "migrate/destination_phase.h"

#include <optional>
#include <variant>

#include "common/logging.h"
#include "security/replay_guard.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;
using S = DestinationState;

template <typename T>
bool is(const m::Command& c) {
  return std::holds_alternative<T>(c);
}

// The state after `c` in `from`, or nullopt when `c` may not come now.
std::optional<S> next_state(DestinationFlow flow, S from, const m::Command& c) {
  if (is<m::Abort>(c)) return from == S::kCommitted ? std::nullopt : std::optional<S>(from);
  switch (flow) {
    case DestinationFlow::kProcess:
      if (from == S::kReceiving) {
        if (is<m::FileBatch>(c) || is<m::PageRound>(c) || is<m::LogRound>(c)) return from;
        if (is<m::Verify>(c)) return S::kVerified;
        if (is<m::Restore>(c)) return S::kRestored;
      } else if (from == S::kVerified) {
        if (is<m::FileBatch>(c) || is<m::PageRound>(c)) return from;  // the differing pages
        if (is<m::Restore>(c)) return S::kRestored;
      } else if (from == S::kRestored) {
        if (is<m::Commit>(c)) return S::kCommitted;
      }
      return std::nullopt;
    case DestinationFlow::kVm:
      if (from == S::kReceiving) {
        if (is<m::VmProgress>(c)) return from;
        if (is<m::Commit>(c)) return S::kCommitted;
      }
      return std::nullopt;
    case DestinationFlow::kVmLog:
      if (from == S::kReceiving) {
        if (const auto* l = std::get_if<m::LogRound>(&c)) return l->final ? S::kRestored : from;
        if (is<m::VmProgress>(c)) return from;
      } else if (from == S::kRestored) {
        if (is<m::VmProgress>(c)) return from;
        if (is<m::Commit>(c)) return S::kCommitted;
      }
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

const char* destination_state_name(DestinationState s) {
  switch (s) {
    case S::kReceiving:
      return "receiving";
    case S::kVerified:
      return "verified";
    case S::kRestored:
      return "restored";
    case S::kCommitted:
      return "committed";
  }
  return "?";
}

Status DestinationPhase::step(const m::Command& c) {
  std::optional<S> next = next_state(flow_, state_, c);
  if (!next) {
    return Status::InvalidArgument(std::string(m::command_name(c)) +
                                   " is out of order: the migration is " +
                                   destination_state_name(state_) + " here");
  }
  state_ = *next;
  return Status::Ok();
}

Status refuse_command(security::RequestGate* gate, const security::PeerIdentity& peer,
                      const m::Command& c, const Status& why) {
  RELIVE_LOG_WARN("refused {} from {}: {}", m::command_name(c), peer.address, why.message());
  if (gate != nullptr) {
    Status logged = gate->refuse(peer, m::command_name(c), why.message(), security::unix_now_ns());
    if (!logged.ok()) RELIVE_LOG_WARN("auditing the refusal: {}", logged.to_string());
  }
  return why;
}

}  // namespace relive::migrate
