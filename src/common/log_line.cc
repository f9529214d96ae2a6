#include "common/log_line.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace relive {
namespace {

bool reserved(std::string_view key) {
  return key == "ts" || key == "level" || key == "prog" || key == "msg";
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", tm, static_cast<int>(ms % 1000));
}

// nlohmann keeps insertion order only with ordered_json: the fields read in a stable order.
std::string json_line(const LogEvent& e) {
  nlohmann::ordered_json j;
  j["ts"] = iso_time(e.time);
  j["level"] = std::string(spdlog::level::to_string_view(e.level).data(),
                           spdlog::level::to_string_view(e.level).size());
  j["prog"] = std::string(e.program);
  if (e.context) {
    for (const auto& [k, v] : *e.context) j[reserved(k) ? "ctx_" + k : k] = v;
  }
  j["msg"] = std::string(e.message);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string human_line(const LogEvent& e) {
  std::string out(e.program);
  out += ": ";
  if (e.level != spdlog::level::info) {
    auto l = spdlog::level::to_string_view(e.level);
    out.append(l.data(), l.size());
    out += ": ";
  }
  if (e.context && !e.context->empty()) {
    out += '[';
    for (size_t i = 0; i < e.context->size(); ++i) {
      if (i) out += ' ';
      out += (*e.context)[i].first + "=" + (*e.context)[i].second;
    }
    out += "] ";
  }
  // One event, one line: a message's own newlines would split it.
  for (char c : e.message) out += (c == '\n' || c == '\r') ? ' ' : c;
  out += '\n';
  return out;
}

}  // namespace

std::string format_log_line(LogFormat format, const LogEvent& event) {
  return format == LogFormat::kJson ? json_line(event) : human_line(event);
}

void LogLineFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  LogEvent e;
  e.time = msg.time;
  e.level = msg.level;
  e.program = program_;
  e.message = std::string_view(msg.payload.data(), msg.payload.size());
  e.context = &log_context();
  std::string line = format_log_line(format_, e);
  dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> LogLineFormatter::clone() const {
  return std::make_unique<LogLineFormatter>(format_, program_);
}

}  // namespace relive
