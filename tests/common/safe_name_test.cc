#include "common/safe_name.h"

#include <gtest/gtest.h>

#include <string>

namespace relive {
namespace {

TEST(SafeName, AcceptsOrdinaryNames) {
  for (const char* n : {"rx", "relive-ha_1", "eth0.100", "A", "x-", "redis.ns"})
    EXPECT_TRUE(check_name("name", n).ok()) << n;
  EXPECT_TRUE(check_name("name", std::string(64, 'a')).ok());
  EXPECT_TRUE(check_name("interface", std::string(15, 'a'), kMaxInterfaceName).ok());
}

TEST(SafeName, RefusesShellAndPathCharacters) {
  for (const char* n : {"rx;touch${IFS}.pwned;#", "a b", "a/b", "$(id)", "`id`", "a|b", "a&b",
                        "a'b", "a\"b", "a\nb", "a\\b", "a*", "a:b", "é"}) {
    Status s = check_name("network namespace", n);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << n;
  }
  Status s = check_name("network namespace", "rx;touch${IFS}.pwned;#");
  EXPECT_NE(s.message().find("network namespace"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("only letters, digits"), std::string::npos) << s.message();
}

TEST(SafeName, RefusesLeadingDashOrDot) {
  for (const char* n : {"-rf", "--help", ".", "..", ".hidden"})
    EXPECT_FALSE(check_name("name", n).ok()) << n;
}

TEST(SafeName, RefusesEmptyAndLong) {
  EXPECT_FALSE(check_name("name", "").ok());
  EXPECT_FALSE(check_name("name", std::string(65, 'a')).ok());
  EXPECT_FALSE(check_name("interface", std::string(16, 'a'), kMaxInterfaceName).ok());
}

TEST(SafeName, ErrorMessageHasNoControlCharacters) {
  Status s = check_name("name", std::string("a\x1b[31mb\n", 9));
  ASSERT_FALSE(s.ok());
  for (char c : s.message()) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
}

}  // namespace
}  // namespace relive
