// AuditLog: the non-repudiation record of a relived agent. Every control request it accepts or
// refuses is appended as one JSON line, and fsync'd before the decision takes effect, so that a
// crash cannot lose the record of a migration that happened.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/scoped_fd.h"
#include "relive/result.h"
#include "security/channel.h"
#include "wire/protocol_types.h"

namespace relive::security {

struct AuditRecord {
  int64_t time_ns = 0;  // unix time of the decision
  std::string peer_subject;
  std::string peer_address;
  std::string kind;     // "request", "hello", ... (protocol::kind_name)
  std::string command;  // the request's command, "" for other kinds
  std::string nonce_hex;
  bool accepted = false;
  std::string reason;  // why refused; "" when accepted
};

// One JSON object, no newline: {"time":"2026-11-22T20:40:01.123456789Z","time_ns":...,
// "peer_subject":...,"peer_address":...,"kind":...,"command":...,"nonce":...,
// "decision":"accepted"|"refused","reason":...}
std::string audit_json(const AuditRecord& record);

class AuditLog {
 public:
  // Opens (creating with mode 0600) `path` for appending.
  static Result<AuditLog> open(const std::string& path);

  // Appends one line and fsyncs it. A failure means the decision must not take effect.
  // Thread-safe: lines of concurrent callers never interleave.
  Status append(const AuditRecord& record);

  const std::string& path() const { return path_; }

 private:
  AuditLog(ScopedFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  ScopedFd fd_;
  std::string path_;
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();  // a pointer: AuditLog moves
};

}  // namespace relive::security
