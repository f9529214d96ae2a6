// The `relive container` command line, end to end with the build's relive binary.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "ct_harness.h"

namespace relive::ct {
namespace {

class ContainerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    RELIVE_REQUIRE_CRIU();
    ASSERT_TRUE(exists(testing::relive_bin())) << "build the relive target first";
  }
  static testing::RunResult relive(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {testing::relive_bin(), "container"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::run(argv, 120);
  }
};

TEST_F(ContainerCli, CheckpointInspectRestore) {
  testing::TempDir dir;
  std::string result = dir / "result", archive = dir / "pipe.rlvc";
  Subject s("ct_pipe", result);
  ASSERT_TRUE(s.ready());
  auto ck = relive({"checkpoint", "--pid", std::to_string(s.pid()), "-o", archive});
  ASSERT_EQ(ck.exit_code, 0) << ck.err;
  EXPECT_NE(ck.out.find("checkpointed 2 process(es)"), std::string::npos) << ck.out;
  s.reap();

  auto in = relive({"inspect", archive, "--json"});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  auto j = nlohmann::json::parse(in.out);
  EXPECT_TRUE(j["verified"].get<bool>());
  EXPECT_EQ(j["processes"].size(), 2u);
  EXPECT_GE(j["pipes"].get<int>(), 2);

  std::remove(result.c_str());
  auto rs = relive({"restore", archive, "--name", "cli-test"});
  ASSERT_EQ(rs.exit_code, 0) << rs.err;
  pid_t root = std::atoi(rs.out.c_str());
  ASSERT_GT(root, 0) << rs.out;
  auto st = nlohmann::json::parse(testing::read_all("/run/relive/containers/cli-test.json"));
  ContainerRestoreResult r;
  r.init_pid = st["init_pid"].get<pid_t>();
  RestoredTree tree(r);
  EXPECT_EQ(st["root_pid"].get<pid_t>(), root);
  ASSERT_EQ(::kill(root, SIGUSR1), 0);
  EXPECT_TRUE(wait_until([&] { return testing::read_all(result) == "OK\n"; }, milliseconds(20000)))
      << testing::read_all(result);
  std::remove("/run/relive/containers/cli-test.json");
}

TEST_F(ContainerCli, CorruptArchiveFailsWithExitCode125) {
  testing::TempDir dir;
  testing::write_all_to(dir / "bad.rlvc", "RLVCTAR");
  auto in = relive({"inspect", dir / "bad.rlvc"});
  EXPECT_EQ(in.exit_code, 125);
  EXPECT_NE(in.err.find("corruption"), std::string::npos) << in.err;
  auto rs = relive({"restore", dir / "bad.rlvc"});
  EXPECT_EQ(rs.exit_code, 125);
  EXPECT_TRUE(rs.out.empty()) << rs.out;
}

TEST_F(ContainerCli, NonexistentPidFails) {
  testing::TempDir dir;
  auto ck = relive({"checkpoint", "--pid", "999999999", "-o", dir / "a.rlvc"});
  EXPECT_EQ(ck.exit_code, 125);
  EXPECT_NE(ck.err.find("no process"), std::string::npos) << ck.err;
  EXPECT_FALSE(exists(dir / "a.rlvc"));
}

}  // namespace
}  // namespace relive::ct
