// HOST:PORT from command lines and config files: what is accepted, and every kind of bad input
// refused with a message.
#include "common/host_port.h"

#include <gtest/gtest.h>

#include <string>

namespace relive {
namespace {

std::string error_of(std::string_view text) {
  Result<HostPort> hp = parse_host_port(text);
  EXPECT_FALSE(hp.ok()) << text;
  return hp.ok() ? "" : hp.status().message();
}

TEST(HostPort, ParsesNamesAndIpv4) {
  EXPECT_EQ(*parse_host_port("198.18.0.1:7411"), (HostPort{"198.18.0.1", 7411}));
  EXPECT_EQ(*parse_host_port("etcd-1.example_net:2379"), (HostPort{"etcd-1.example_net", 2379}));
  EXPECT_EQ(*parse_host_port("h:1"), (HostPort{"h", 1}));
  EXPECT_EQ(*parse_host_port("h:65535"), (HostPort{"h", 65535}));
  EXPECT_EQ(*parse_host_port("h:00080"), (HostPort{"h", 80}));
}

TEST(HostPort, ParsesBracketedIpv6) {
  EXPECT_EQ(*parse_host_port("[::1]:7070"), (HostPort{"::1", 7070}));
  EXPECT_EQ(*parse_host_port("[fd00::1:2]:80"), (HostPort{"fd00::1:2", 80}));
  EXPECT_EQ(*parse_host_port("[::ffff:198.18.0.1]:80"), (HostPort{"::ffff:198.18.0.1", 80}));
}

TEST(HostPort, RejectsMissingPort) {
  EXPECT_EQ(error_of("198.18.0.1"), "expected HOST:PORT");
  EXPECT_EQ(error_of(""), "expected HOST:PORT");
  EXPECT_EQ(error_of(":80"), "expected HOST:PORT");
  EXPECT_EQ(error_of("[::1]"), "expected HOST:PORT");
  EXPECT_EQ(error_of("h:"), "port must be a number");
}

TEST(HostPort, RejectsPortsOutOfRange) {
  EXPECT_EQ(error_of("h:0"), "port must be between 1 and 65535");
  EXPECT_EQ(error_of("h:00000"), "port must be between 1 and 65535");
  EXPECT_EQ(error_of("h:65536"), "port must be between 1 and 65535");
  EXPECT_EQ(error_of("h:99999"), "port must be between 1 and 65535");
  EXPECT_EQ(error_of("h:100000"), "port must be a number");
  EXPECT_EQ(error_of("h:99999999999999999999"), "port must be a number");
}

TEST(HostPort, RejectsPortsThatAreNotDigits) {
  EXPECT_EQ(error_of("h:80a"), "port must be a number");
  EXPECT_EQ(error_of("h:0x50"), "port must be a number");
  EXPECT_EQ(error_of("h:+80"), "port must be a number");
  EXPECT_EQ(error_of("h:-80"), "port must be a number");
  EXPECT_EQ(error_of("h: 80"), "port must be a number");
  EXPECT_EQ(error_of("h:80 "), "port must be a number");
}

TEST(HostPort, RejectsBadHosts) {
  EXPECT_EQ(error_of("::1:80"), "an IPv6 host must be in brackets ([ADDR]:PORT)");
  EXPECT_EQ(error_of("[::1:80"), "unclosed '[' in host");
  EXPECT_EQ(error_of("[]:80"), "unclosed '[' in host");
  EXPECT_EQ(error_of("[fe80::1%eth0]:80"), "bad IPv6 address in brackets");
  EXPECT_EQ(error_of("a b:80"), "host must be of [A-Za-z0-9._-]");
  EXPECT_EQ(error_of("h;id:80"), "host must be of [A-Za-z0-9._-]");
  EXPECT_EQ(error_of(std::string_view("h\0x:80", 6)), "host must be of [A-Za-z0-9._-]");
}

TEST(HostPort, FormatsWhatItParses) {
  for (const char* text : {"198.18.0.1:7411", "[::1]:7070", "name:1"}) {
    Result<HostPort> hp = parse_host_port(text);
    ASSERT_TRUE(hp.ok()) << text;
    EXPECT_EQ(format_host_port(*hp), text);
  }
}

}  // namespace
}  // namespace relive
