// Logging goes through spdlog to stderr; the level comes from RELIVE_LOG (trace, debug, info,
// warn, error) and defaults to warn so that a replayed program's stderr stays its own.
#pragma once

#include <spdlog/spdlog.h>

namespace relive {
void init_logging();
}

#define RELIVE_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define RELIVE_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define RELIVE_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
