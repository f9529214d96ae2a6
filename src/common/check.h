// RELIVE_CHECK: a bug check. It stays on in release builds and prints the failed condition and
// the values involved, then aborts. Expected failures use Status instead.
#pragma once

#include <fmt/format.h>

namespace relive::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond,
                               const std::string& msg);
}

#define RELIVE_CHECK(cond, ...)                                                                 \
  do {                                                                                          \
    if (!(cond)) [[unlikely]]                                                                   \
      ::relive::detail::check_failed(__FILE__, __LINE__, #cond, ::fmt::format("" __VA_ARGS__)); \
  } while (0)
