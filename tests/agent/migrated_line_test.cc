#include "agent/migrated_line.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace relive::agent {
namespace {

TEST(MigratedLine, IsOneJsonObjectWithTheMigrationsFields) {
  migrate::DestinationOutcome r;
  r.name = "counter";
  r.strategy = "stop-copy";
  r.root_pid = 4242;
  nlohmann::json j = nlohmann::json::parse(migrated_line(r, "m1-1"));
  EXPECT_EQ(j["event"], "migrated");
  EXPECT_EQ(j["migration"], "m1-1");
  EXPECT_EQ(j["name"], "counter");
  EXPECT_EQ(j["strategy"], "stop-copy");
  EXPECT_EQ(j["pid"], 4242);
}

// The workload's name is the peer's bytes: not UTF-8 must not throw (a throw in a worker would
// end relived and every migration it serves).
TEST(MigratedLine, APeersNameThatIsNotUtf8IsReplacedNotThrown) {
  migrate::DestinationOutcome r;
  r.name = std::string("bad\xff\xfe name", 11);
  std::string line;
  ASSERT_NO_THROW(line = migrated_line(r, "m1-2"));
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  EXPECT_EQ(j["name"].get<std::string>().rfind("bad", 0), 0u) << line;
  EXPECT_EQ(j["migration"], "m1-2");
}

}  // namespace
}  // namespace relive::agent
