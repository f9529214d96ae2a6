#include "common/logging.h"

#include <pthread.h>
#include <spdlog/details/console_globals.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <mutex>

#include "common/log_line.h"

namespace relive {
namespace {

thread_local LogContext t_context;

// A child forked while another thread was writing a line would find the stderr sink's mutex
// locked for ever, and the child of a multi-threaded relived runs relive's code (a namespaced
// restore's init, QEMU's guard) that logs. fork() waits until no thread is inside the sink, and
// both sides go on with it unlocked.
void lock_sink() { spdlog::details::console_mutex::mutex().lock(); }
void unlock_sink() { spdlog::details::console_mutex::mutex().unlock(); }

}  // namespace

Result<LogFormat> parse_log_format(std::string_view text) {
  if (text == "human") return LogFormat::kHuman;
  if (text == "json") return LogFormat::kJson;
  return Status::InvalidArgument("must be \"human\" or \"json\", got '" + std::string(text) + "'");
}

void init_logging() { init_logging(LoggingOptions{}); }

void init_logging(const LoggingOptions& o) {
  static std::once_flag fork_handlers;
  std::call_once(fork_handlers, [] { ::pthread_atfork(lock_sink, unlock_sink, unlock_sink); });
  // Plain stderr sink: no colour codes, whatever stderr is (journald, a file, a terminal).
  std::shared_ptr<spdlog::logger> logger = spdlog::get("relive");
  if (!logger) logger = spdlog::stderr_logger_mt("relive");
  logger->set_formatter(std::make_unique<LogLineFormatter>(o.format, o.program));
  logger->flush_on(spdlog::level::trace);  // each line whole and at once, as say() did
  spdlog::set_default_logger(logger);
  const char* level = std::getenv("RELIVE_LOG");
  spdlog::set_level(level ? spdlog::level::from_str(level) : o.default_level);
}

const LogContext& log_context() { return t_context; }

ScopedLogContext::ScopedLogContext(std::string key, std::string value) {
  t_context.emplace_back(std::move(key), std::move(value));
}

ScopedLogContext::~ScopedLogContext() { t_context.pop_back(); }

}  // namespace relive
