#include "drivers/criu/criu_binary.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <string>
#include <thread>

#include "common/file_util.h"
#include "drivers/criu/command.h"

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

TEST(RunCommand, CapturesOutputAndExitCode) {
  auto r = run_command({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->output, "out\nerr\n");
  EXPECT_EQ(r->describe(), "exit status 3");
}

TEST(RunCommand, PassesExtraEnvironmentAndNullStdin) {
  auto r = run_command({"/bin/sh", "-c", "echo $RELIVE_X; cat"}, {.env = {"RELIVE_X=42"}});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->output, "42\n");
}

TEST(RunCommand, KillsOnTimeout) {
  auto r =
      run_command({"/bin/sleep", "10"}, {.env = {}, .timeout = std::chrono::milliseconds(100)});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->describe(), "timed out and was killed");
}

TEST(RunCommand, TimeoutAlsoKillsWhatTheProgramStarted) {
  auto r = run_command({"/bin/sh", "-c", "sleep 100 & echo $!; wait"},
                       {.env = {}, .timeout = std::chrono::milliseconds(300)});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  pid_t grandchild = std::atoi(r->output.c_str());
  ASSERT_GT(grandchild, 0) << r->output;
  // SIGKILLed: it dies within moments, then is a zombie until PID 1 reaps it (~1.5 s here).
  std::string stat_path = "/proc/" + std::to_string(grandchild) + "/stat";
  auto dead = [&] {
    auto stat = read_file(stat_path);
    return !stat.ok() || stat->find(") Z ") != std::string::npos;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!dead() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(dead()) << "the program's child survived the timeout";
}

TEST(RunCommand, MissingProgramFailsToStart) {
  auto r = run_command({"/nonexistent/criu"});
  EXPECT_EQ(r.status().code(), Status::Code::kIoError);
}

}  // namespace
}  // namespace relive::criu
