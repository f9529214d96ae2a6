#include "common/ipv4_cidr.h"

#include <arpa/inet.h>

#include <algorithm>

namespace relive {

Result<Ipv4Cidr> parse_ipv4_cidr(std::string_view text, CidrPrefix prefix) {
  Ipv4Cidr c;
  size_t slash = text.find('/');
  c.address = std::string(text.substr(0, slash));
  if (::inet_pton(AF_INET, c.address.c_str(), &c.ip) != 1)
    return Status::InvalidArgument("not an IPv4 address");
  if (slash == std::string_view::npos) {
    if (prefix == CidrPrefix::kRequired)
      return Status::InvalidArgument("missing prefix length (/N)");
    return c;
  }
  std::string_view len = text.substr(slash + 1);
  bool digits = !len.empty() && len.size() <= 2 &&
                std::all_of(len.begin(), len.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  unsigned v = 0;
  for (char ch : len) v = v * 10 + static_cast<unsigned>(ch - '0');
  if (!digits || v > 32) return Status::InvalidArgument("prefix length must be 0-32");
  c.prefix = static_cast<uint8_t>(v);
  return c;
}

}  // namespace relive
