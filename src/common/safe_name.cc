#include "common/safe_name.h"

#include <algorithm>
#include <string>

namespace relive {
namespace {

bool allowed(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// The value as it may be shown in a message: printable ASCII only, so that a hostile name
// cannot put control characters in a log.
std::string printable(std::string_view v) {
  std::string out;
  for (char c : v.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (v.size() > 80) out += "...";
  return out;
}

}  // namespace

Status check_name(std::string_view kind, std::string_view value, size_t max_len) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(std::string(kind) + " '" + printable(value) + "': " + why);
  };
  if (value.empty()) return bad("must not be empty");
  if (value.size() > max_len) return bad("longer than " + std::to_string(max_len) + " characters");
  if (!std::all_of(value.begin(), value.end(), allowed))
    return bad("may hold only letters, digits, '.', '_' and '-'");
  if (value.front() == '-' || value.front() == '.') return bad("must not start with '-' or '.'");
  return Status::Ok();
}

}  // namespace relive
