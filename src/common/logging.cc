#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace relive {

void init_logging() {
  auto logger = spdlog::stderr_color_mt("relive");
  logger->set_pattern("relive[%P] %^%l%$: %v");
  spdlog::set_default_logger(logger);
  const char* level = std::getenv("RELIVE_LOG");
  spdlog::set_level(level ? spdlog::level::from_str(level) : spdlog::level::warn);
}

}  // namespace relive
