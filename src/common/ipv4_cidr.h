// An IPv4 address with its prefix length, "A.B.C.D/N", as written in config files and migration
// requests: the one parser of it.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "relive/result.h"

namespace relive {

struct Ipv4Cidr {
  in_addr ip{};
  uint8_t prefix = 32;
  std::string address;  // "198.18.0.100" (no prefix)
  std::string text() const { return address + "/" + std::to_string(prefix); }
};

enum class CidrPrefix {
  kRequired,  // "A.B.C.D" without "/N" is an error
  kOptional,  // "A.B.C.D" alone means /32
};

// Parses "A.B.C.D/N" with N 0-32 in one or two decimal digits (no sign). Anything else is
// InvalidArgument, with a message that says what.
Result<Ipv4Cidr> parse_ipv4_cidr(std::string_view text, CidrPrefix prefix);

}  // namespace relive
