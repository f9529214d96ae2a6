// IPv4 addresses with a prefix length, as config files and migration requests carry them.
#include "common/ipv4_cidr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace relive {
namespace {

std::string error_of(std::string_view text, CidrPrefix p = CidrPrefix::kRequired) {
  Result<Ipv4Cidr> c = parse_ipv4_cidr(text, p);
  EXPECT_FALSE(c.ok()) << text;
  return c.ok() ? "" : c.status().message();
}

TEST(Ipv4Cidr, ParsesAddressAndPrefix) {
  Result<Ipv4Cidr> c = parse_ipv4_cidr("198.18.5.10/24", CidrPrefix::kRequired);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->address, "198.18.5.10");
  EXPECT_EQ(c->prefix, 24);
  EXPECT_EQ(ntohl(c->ip.s_addr), 0xc612050au);
  EXPECT_EQ(c->text(), "198.18.5.10/24");
  EXPECT_EQ(parse_ipv4_cidr("0.0.0.0/0", CidrPrefix::kRequired)->prefix, 0);
  EXPECT_EQ(parse_ipv4_cidr("198.18.0.1/32", CidrPrefix::kRequired)->prefix, 32);
}

TEST(Ipv4Cidr, PrefixIsOptionalOnlyWhenAskedFor) {
  Result<Ipv4Cidr> c = parse_ipv4_cidr("198.18.0.100", CidrPrefix::kOptional);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->prefix, 32);
  EXPECT_EQ(c->text(), "198.18.0.100/32");
  EXPECT_EQ(error_of("198.18.0.100"), "missing prefix length (/N)");
}

TEST(Ipv4Cidr, RejectsBadPrefixes) {
  EXPECT_EQ(error_of("198.18.0.1/33"), "prefix length must be 0-32");
  EXPECT_EQ(error_of("198.18.0.1/99"), "prefix length must be 0-32");
  EXPECT_EQ(error_of("198.18.0.1/100"), "prefix length must be 0-32");
  EXPECT_EQ(error_of("198.18.0.1/"), "prefix length must be 0-32");
  EXPECT_EQ(error_of("198.18.0.1/+8"), "prefix length must be 0-32");
  EXPECT_EQ(error_of("198.18.0.1/-1"), "prefix length must be 0-32");
  EXPECT_EQ(error_of("198.18.0.1/2a"), "prefix length must be 0-32");
  EXPECT_EQ(error_of("198.18.0.1/24/8"), "prefix length must be 0-32");
  EXPECT_EQ(error_of("198.18.0.1/33", CidrPrefix::kOptional), "prefix length must be 0-32");
}

TEST(Ipv4Cidr, RejectsWhatIsNotAnIpv4Address) {
  EXPECT_EQ(error_of("198.18.0.300/24"), "not an IPv4 address");
  EXPECT_EQ(error_of("198.18.0/24"), "not an IPv4 address");
  EXPECT_EQ(error_of("::1/64"), "not an IPv4 address");
  EXPECT_EQ(error_of("host/24"), "not an IPv4 address");
  EXPECT_EQ(error_of(""), "not an IPv4 address");
  EXPECT_EQ(error_of(" 198.18.0.1/24"), "not an IPv4 address");
  EXPECT_EQ(error_of("/24"), "not an IPv4 address");
}

}  // namespace
}  // namespace relive
