// HOST:PORT as written on command lines and in config files: the one parser of it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "relive/result.h"

namespace relive {

struct HostPort {
  std::string host;  // a name or IPv4 address, or an IPv6 address without its brackets
  uint16_t port = 0;
  bool operator==(const HostPort&) const = default;
};

// Parses "HOST:PORT" or "[IPV6]:PORT". HOST is a name or address of [A-Za-z0-9._-] (an IPv6
// address, which holds ':', only in brackets, of hex digits, ':' and '.'); PORT is 1-65535 in
// decimal digits, no sign. Anything else is InvalidArgument, with a message that says what.
Result<HostPort> parse_host_port(std::string_view text);

// "host:port", or "[host]:port" when host is an IPv6 address: what parse_host_port() reads.
std::string format_host_port(const HostPort& hp);

}  // namespace relive
