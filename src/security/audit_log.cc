#include "security/audit_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/file_util.h"

namespace relive::security {
namespace {

std::string iso8601(int64_t unix_ns) {
  time_t secs = static_cast<time_t>(unix_ns / 1'000'000'000);
  int64_t frac = unix_ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  tm utc{};
  gmtime_r(&secs, &utc);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:09d}Z", buf, frac);
}

}  // namespace

std::string audit_json(const AuditRecord& r) {
  // Peer-controlled strings may hold any bytes; replace invalid UTF-8 rather than fail to log.
  nlohmann::ordered_json j = {
      {"time", iso8601(r.time_ns)},
      {"time_ns", r.time_ns},
      {"peer_subject", r.peer_subject},
      {"peer_address", r.peer_address},
      {"kind", r.kind},
      {"command", r.command},
      {"nonce", r.nonce_hex},
      {"decision", r.accepted ? "accepted" : "refused"},
      {"reason", r.reason},
  };
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<AuditLog> AuditLog::open(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd.valid()) return PosixError("open audit log " + path, errno);
  return AuditLog(std::move(fd), path);
}

Status AuditLog::append(const AuditRecord& record) {
  // One write of the whole line: with O_APPEND, concurrent writers never interleave within it.
  std::string line = audit_json(record) + "\n";
  {
    std::lock_guard<std::mutex> lock(*mu_);
    RELIVE_RETURN_IF_ERROR(write_all(fd_.get(), line).with_context("audit log " + path_));
  }
  // Outside the lock: the line is written, so this fsync returns once it is on disk whoever
  // else's line it also carries; concurrent requests share the disk's latency instead of
  // queueing for it one after another.
  if (::fsync(fd_.get()) != 0) return PosixError("fsync audit log " + path_, errno);
  return Status::Ok();
}

}  // namespace relive::security
