// Logging goes through spdlog to stderr, one line per event. The level comes from RELIVE_LOG
// (trace, debug, info, warn, error); relive defaults to warn so that a replayed program's stderr
// stays its own, relived to info (its events are what an operator reads).
//
// Two line formats (log_line.h): human, "relived: [migration=m-1] listening on ...", and JSON,
// {"ts":"...","level":"info","prog":"relived","migration":"m-1","msg":"..."}. Neither has colours,
// so that journald and files get plain lines. A thread names what it works on with a
// ScopedLogContext; every line it logs while that lives carries the field.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relive/result.h"

namespace relive {

enum class LogFormat { kHuman, kJson };

// "human" or "json"; anything else is InvalidArgument.
Result<LogFormat> parse_log_format(std::string_view text);

struct LoggingOptions {
  std::string program = "relive";  // the line prefix / "prog" field
  LogFormat format = LogFormat::kHuman;
  // Used when RELIVE_LOG is unset.
  spdlog::level::level_enum default_level = spdlog::level::warn;
};

// relive's defaults (program "relive", human, warn).
void init_logging();
// May be called again (after the command line is parsed) to change program, format or level.
void init_logging(const LoggingOptions& options);

// The context fields of the calling thread, outermost first.
using LogContext = std::vector<std::pair<std::string, std::string>>;
const LogContext& log_context();

// Adds `key`=`value` to the calling thread's log context for its lifetime ("migration", id;
// "epoch", n). Scopes nest (a key set again inside: JSON keeps the inner value, human lines show
// both). Not movable: it must be destroyed on the thread that made it, in reverse order.
class ScopedLogContext {
 public:
  ScopedLogContext(std::string key, std::string value);
  ~ScopedLogContext();
  ScopedLogContext(const ScopedLogContext&) = delete;
  ScopedLogContext& operator=(const ScopedLogContext&) = delete;
};

}  // namespace relive

#define RELIVE_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define RELIVE_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define RELIVE_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define RELIVE_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
