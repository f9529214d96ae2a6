// QmpClient: one connection to a QEMU monitor speaking QMP (QEMU Machine Protocol) over a unix
// socket. It reads the greeting, leaves negotiation mode (qmp_capabilities), then executes
// commands one at a time; asynchronous events that arrive meanwhile are queued and handed out
// by next_event(). Everything QEMU says is untrusted input: lines are bounded and parsed without
// exceptions, and QEMU's own error text ends up in the returned Status.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/scoped_fd.h"
#include "relive/result.h"

namespace relive::qemu {

struct QmpEvent {
  std::string name;      // "MIGRATION", "STOP", ...
  nlohmann::json data;   // the event's "data" member ({} when it has none)
  double timestamp = 0;  // seconds, QEMU's host clock when it emitted the event
};

// Not thread-safe. Move-only; the destructor closes the socket (QEMU keeps running).
class QmpClient {
 public:
  // Longest line (one JSON message) accepted from QEMU.
  static constexpr size_t kMaxLine = 16 << 20;

  // Connects to `socket_path`, retrying while the socket does not exist or refuses (a QEMU that
  // was just started) until `timeout`, then negotiates. Every later call also gives up after
  // `timeout` without an answer.
  static Result<QmpClient> connect(const std::string& socket_path,
                                   std::chrono::milliseconds timeout);

  QmpClient(QmpClient&&) noexcept = default;
  QmpClient& operator=(QmpClient&&) noexcept = default;

  // Runs `command` with `arguments` (an object, or null for none) and returns its "return"
  // member. A QMP error becomes Status::InvalidArgument("<command>: <Class>: <desc>");
  // a lost or silent connection IoError; malformed output Corruption.
  Result<nlohmann::json> execute(const std::string& command,
                                 const nlohmann::json& arguments = nullptr);

  // The next event, queued or read within `timeout`; nullopt when none arrives in time.
  Result<std::optional<QmpEvent>> next_event(std::chrono::milliseconds timeout);

  // QEMU's version as the greeting gave it, "10.0.2".
  const std::string& version() const { return version_; }
  // The process at the other end of the socket (SO_PEERCRED).
  pid_t peer_pid() const { return peer_pid_; }

 private:
  QmpClient(ScopedFd fd, std::chrono::milliseconds timeout)
      : fd_(std::move(fd)), timeout_(timeout) {}
  // Reads one message within `timeout`; nullopt on timeout.
  Result<std::optional<nlohmann::json>> read_message(std::chrono::milliseconds timeout);
  Status send_line(const std::string& line);
  Status negotiate();

  ScopedFd fd_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;  // bytes read past the last complete line
  std::deque<QmpEvent> events_;
  std::string version_;
  pid_t peer_pid_ = -1;
  uint64_t next_id_ = 1;
};

}  // namespace relive::qemu
