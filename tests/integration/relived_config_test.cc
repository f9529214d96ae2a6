// relived run the way an operator runs it: everything from its config file (relived.toml), its
// log lines as JSON on stderr, one per event, each about a migration carrying its id; and the
// one version both binaries print.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "counter_subject.h"
#include "netns_hosts.h"
#include "relived_fixture.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

class RelivedFromConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, CRIU)";
    ASSERT_NO_FATAL_FAILURE(make_two_hosts(hosts_, dir_));
    write_all_to(dir_ / "counter.py", kCounter);
  }
  void TearDown() override { kill_test_processes(&relived_, dir_); }

  TempDir dir_;
  NetnsHosts hosts_{"rlc" + std::to_string(::getpid() % 100000), 17};
  std::unique_ptr<Background> relived_;
};

TEST_F(RelivedFromConfig, MigratesIntoARelivedConfiguredByItsFileOnly) {
  write_all_to(dir_ / "relived.toml",
               "# every setting here, none on the command line\n"
               "listen = \"" +
                   relived_address(hosts_) +
                   "\"\n"
                   "name = \"hostb\"\n"
                   "tls_dir = \"" +
                   dir_ / "keys" +
                   "\"\n"
                   "state_dir = \"" +
                   dir_ / "stateb" +
                   "\"\n"
                   "work_dir = \"/dev/shm\"\n"
                   "max_concurrent = 2\n"
                   "io_timeout_s = 30\n"
                   "log_format = \"json\"\n"
                   "[runc]\n"
                   "bundles = \"" +
                   dir_ / "bundles" + "\"\n");
  relived_ = std::make_unique<Background>(
      hosts_.in('b', {relived_bin(), "--config", dir_ / "relived.toml"}), dir_ / "relived.out",
      dir_ / "relived.err");
  ASSERT_TRUE(eventually(
      [&] { return read_all(dir_ / "relived.err").find("listening") != std::string::npos; },
      seconds(10)))
      << read_all(dir_ / "relived.err");

  std::string log = dir_ / "counter.log";
  Background counter(hosts_.in('a', {"/usr/bin/python3", dir_ / "counter.py", log}), "/dev/null");
  ASSERT_TRUE(eventually([&] { return last_count(log) >= 10; }, seconds(10)));
  RunResult r =
      run(hosts_.in('a', {relive_bin(), "migrate", "--pid", std::to_string(counter.pid()), "--to",
                          relived_address(hosts_), "--strategy", "stop-copy", "--tls-dir",
                          dir_ / "keys", "--name", "hosta", "--peer-name", "hostb", "--json"}),
          180);
  ASSERT_EQ(r.exit_code, 0) << r.err << read_all(dir_ / "relived.err");
  nlohmann::json report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["strategy"], "stop-copy");
  // Not a terminal (and --json): the progress is the plain lines scripts read.
  EXPECT_NE(r.err.find("relive: phase=dump"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
  int at_switch = last_count(log);
  EXPECT_TRUE(eventually([&] { return last_count(log) >= at_switch + 20; }, seconds(10)))
      << "the counter did not carry on at the destination";

  // stdout: the "migrated" event scripts parse, now with the migration's id.
  std::string migration;
  ASSERT_TRUE(eventually(
      [&] { return read_all(dir_ / "relived.out").find("migrated") != std::string::npos; },
      seconds(30)));
  for (const std::string& l : lines_of(read_all(dir_ / "relived.out"))) {
    nlohmann::json j = nlohmann::json::parse(l);
    if (j.value("event", "") == "migrated") migration = j.value("migration", "");
  }
  ASSERT_FALSE(migration.empty()) << read_all(dir_ / "relived.out");

  // stderr: every line one JSON object with ts, level, msg; the migration's lines carry its id.
  bool listening = false, connected = false, migrated = false;
  for (const std::string& l : lines_of(read_all(dir_ / "relived.err"))) {
    nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << l;
    ASSERT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << l;
    EXPECT_EQ(j["prog"], "relived") << l;
    std::string msg = j["msg"];
    if (msg.find("listening on") != std::string::npos) {
      listening = true;
      EXPECT_FALSE(j.contains("migration")) << "no migration yet: " << l;
    }
    if (msg.find("connection from") != std::string::npos) {
      connected = true;
      EXPECT_EQ(j.value("migration", ""), migration) << l;
    }
    if (msg.find("migrated ") == 0) {
      migrated = true;
      EXPECT_EQ(j.value("migration", ""), migration) << l;
    }
  }
  EXPECT_TRUE(listening && connected && migrated) << read_all(dir_ / "relived.err");
  pid_t dest = report["destination_pid"].get<pid_t>();
  ASSERT_GT(dest, 0);
  ::kill(dest, SIGKILL);
}

TEST_F(RelivedFromConfig, ABadKeyStopsItNamingTheKey) {
  write_all_to(dir_ / "relived.toml", "listen = \"198.18.17.2:7070\"\nmax_concurrent = 0\n");
  RunResult r = run({relived_bin(), "--config", dir_ / "relived.toml"}, 10);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("max_concurrent (line 2): must be between 1 and 1024, got 0"),
            std::string::npos)
      << r.err;
}

TEST(Version, BothBinariesPrintTheProjectVersion) {
  RunResult a = run({relive_bin(), "--version"}, 10);
  RunResult b = run({relived_bin(), "--version"}, 10);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ASSERT_EQ(a.out.rfind("relive ", 0), 0u) << a.out;
  ASSERT_EQ(b.out.rfind("relived ", 0), 0u) << b.out;
  EXPECT_EQ(a.out.substr(7), b.out.substr(8));
  EXPECT_NE(a.out.find('.'), std::string::npos) << a.out;
}

// relive's own errors are log lines too: with --log-format json, one JSON object.
TEST(ReliveLogFormat, ErrorsAreJsonLinesWithJson) {
  RunResult r = run({relive_bin(), "--log-format", "json", "dump", "/nonexistent/trace"}, 10);
  EXPECT_NE(r.exit_code, 0);
  std::vector<std::string> lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  nlohmann::json j = nlohmann::json::parse(lines[0], nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.err;
  EXPECT_EQ(j["level"], "error") << r.err;
  EXPECT_EQ(j["prog"], "relive") << r.err;
  EXPECT_NE(j["msg"].get<std::string>().find("/nonexistent/trace"), std::string::npos) << r.err;
  RunResult human = run({relive_bin(), "dump", "/nonexistent/trace"}, 10);
  EXPECT_EQ(human.err.rfind("relive: error: ", 0), 0u) << human.err;
}

}  // namespace
}  // namespace relive::testing
