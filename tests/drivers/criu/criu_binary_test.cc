#include "drivers/criu/criu_binary.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <string>
#include <thread>

#include "common/file_util.h"

namespace relive::criu {
namespace {

TEST(CriuVersion, ParsesTheVersionLine) {
  auto v = parse_criu_version("Version: 4.1.1\n");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->to_string(), "4.1.1");
  EXPECT_TRUE(v->at_least(4, 1));
  v = parse_criu_version("Version: 4.2\nGitID: v4.2-3-gabc\n");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->to_string(), "4.2.0");
  v = parse_criu_version("Version: 3.17.1\n");
  ASSERT_TRUE(v.has_value());
  EXPECT_FALSE(v->at_least(4, 1));
  EXPECT_TRUE(parse_criu_version("Version: 5.0")->at_least(4, 1));
  EXPECT_FALSE(parse_criu_version("criu: command not found").has_value());
  EXPECT_FALSE(parse_criu_version("Version: four").has_value());
  EXPECT_FALSE(parse_criu_version("Version: 4").has_value());
}

// Points $RELIVE_CRIU at a fake criu for the length of a test.
class FindCriuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relive-criu-bin-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ::unsetenv("RELIVE_CRIU");
    (void)remove_tree(dir_);
  }
  void fake_criu(const std::string& version_output) {
    std::string path = dir_ + "/criu";
    ASSERT_TRUE(write_file_atomic(path, "#!/bin/sh\necho '" + version_output + "'\n").ok());
    ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
    ::setenv("RELIVE_CRIU", path.c_str(), 1);
  }
  std::string dir_;
};

TEST_F(FindCriuTest, FindsABootstrappedCriu) {
  auto path = find_criu();
  if (!path.ok() && path.status().code() == Status::Code::kNotFound) {
    GTEST_SKIP() << path.status().to_string();
  }
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  auto v = criu_version(*path);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->at_least(4, 1)) << v->to_string();
}

TEST_F(FindCriuTest, RejectsAnOldCriuAndSaysHowToFixIt) {
  fake_criu("Version: 3.17.1");
  auto path = find_criu();
  ASSERT_FALSE(path.ok());
  EXPECT_TRUE(path.status().is_unsupported());
  EXPECT_NE(path.status().message().find("3.17.1"), std::string::npos);
  EXPECT_NE(path.status().message().find("scripts/bootstrap.sh"), std::string::npos);
}

TEST_F(FindCriuTest, HonoursTheOverride) {
  fake_criu("Version: 4.1.9");
  auto path = find_criu();
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  EXPECT_EQ(*path, dir_ + "/criu");
}

TEST_F(FindCriuTest, OverrideToAMissingFileIsNotFound) {
  ::setenv("RELIVE_CRIU", (dir_ + "/nope").c_str(), 1);
  auto path = find_criu();
  EXPECT_EQ(path.status().code(), Status::Code::kNotFound);
  EXPECT_NE(path.status().message().find("$RELIVE_CRIU"), std::string::npos);
}

TEST_F(FindCriuTest, OverrideWithoutAVersionIsUnsupported) {
  fake_criu("hello");
  EXPECT_TRUE(find_criu().status().is_unsupported());
}

}  // namespace
}  // namespace relive::criu
