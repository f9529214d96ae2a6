#include "common/host_port.h"

#include <algorithm>

namespace relive {
namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool ipv6_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

Result<std::string> parse_host(std::string_view h) {
  if (h.empty()) return Status::InvalidArgument("empty host");
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return Status::InvalidArgument("unclosed '[' in host");
    std::string_view v6 = h.substr(1, h.size() - 2);
    if (!std::all_of(v6.begin(), v6.end(), ipv6_char))
      return Status::InvalidArgument("bad IPv6 address in brackets");
    return std::string(v6);
  }
  if (h.find(':') != std::string_view::npos)
    return Status::InvalidArgument("an IPv6 host must be in brackets ([ADDR]:PORT)");
  if (!std::all_of(h.begin(), h.end(), name_char))
    return Status::InvalidArgument("host must be of [A-Za-z0-9._-]");
  return std::string(h);
}

Result<uint16_t> parse_port(std::string_view p) {
  if (p.empty() || p.size() > 5 ||
      !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::InvalidArgument("port must be a number");
  }
  unsigned v = 0;
  for (char c : p) v = v * 10 + static_cast<unsigned>(c - '0');
  if (v < 1 || v > 65535) return Status::InvalidArgument("port must be between 1 and 65535");
  return static_cast<uint16_t>(v);
}

}  // namespace

Result<HostPort> parse_host_port(std::string_view text) {
  size_t colon = text.rfind(':');
  // "[::1]" alone has colons but no port: the last one must follow the closing bracket.
  size_t bracket = text.rfind(']');
  if (colon == std::string_view::npos || colon == 0 ||
      (bracket != std::string_view::npos && colon < bracket)) {
    return Status::InvalidArgument("expected HOST:PORT");
  }
  HostPort hp;
  RELIVE_ASSIGN_OR_RETURN(hp.host, parse_host(text.substr(0, colon)));
  RELIVE_ASSIGN_OR_RETURN(hp.port, parse_port(text.substr(colon + 1)));
  return hp;
}

std::string format_host_port(const HostPort& hp) {
  bool v6 = hp.host.find(':') != std::string::npos;
  return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

}  // namespace relive
