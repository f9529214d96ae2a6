// The text of one log line, in either format (logging.h): a pure function, so that the format
// is tested without a logger, and the spdlog formatter that relive's logger uses.
#pragma once

#include <spdlog/formatter.h>

#include <chrono>
#include <string>
#include <string_view>

#include "common/logging.h"

namespace relive {

struct LogEvent {
  std::chrono::system_clock::time_point time;
  spdlog::level::level_enum level = spdlog::level::info;
  std::string_view program;
  std::string_view message;
  const LogContext* context = nullptr;  // may be null
};

// One line, with its '\n'. Human: "PROG: [k=v ...] MSG", with "LEVEL: " after "PROG: " unless
// the level is info. JSON: an object with ts (UTC, RFC 3339 with milliseconds), level, prog,
// the context fields, then msg; every string escaped (control characters, quotes, invalid
// UTF-8 replaced), so that each line parses on its own. A context key that would shadow one of
// those names is written with a "ctx_" prefix.
std::string format_log_line(LogFormat format, const LogEvent& event);

// spdlog's side: formats each message with the calling thread's log_context().
class LogLineFormatter : public spdlog::formatter {
 public:
  LogLineFormatter(LogFormat format, std::string program)
      : format_(format), program_(std::move(program)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  LogFormat format_;
  std::string program_;
};

}  // namespace relive
