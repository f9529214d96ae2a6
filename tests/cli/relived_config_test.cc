#include "cli/relived_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace relive::cli {
namespace {

const char* kValid = R"(
listen = "198.18.0.2:7070"
name = "hostb"
tls_dir = "/etc/relive/tls"
insecure = false
state_dir = "/var/lib/relive"
work_dir = "/dev/shm"
max_concurrent = 8
io_timeout_s = 30
drain_timeout_s = 45
metrics_listen = "127.0.0.1:9477"
log_format = "json"
vm_dir = "/var/lib/relive/vms"
ha_config = "/etc/relive/ha/redis.toml"
[runc]
root = "/run/relive-runc"
bundles = "/var/lib/relive/bundles"
netns = "/run/netns/work"
)";

// kValid with the line holding `from` replaced by `to` (removed when `to` is empty).
std::string with(const std::string& from, const std::string& to) {
  std::string s = kValid;
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  s.replace(at, s.find('\n', at) - at, to);
  return s;
}

std::string error_of(const std::string& text) {
  Result<RelivedConfig> r = parse_relived_config(text, "t.toml");
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  return r.status().message();
}

TEST(RelivedConfig, ParsesEveryKey) {
  Result<RelivedConfig> r = parse_relived_config(kValid);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->listen, "198.18.0.2:7070");
  EXPECT_EQ(r->name, "hostb");
  EXPECT_EQ(r->tls_dir, "/etc/relive/tls");
  EXPECT_FALSE(r->insecure);
  EXPECT_EQ(r->state_dir, "/var/lib/relive");
  EXPECT_EQ(r->work_dir, "/dev/shm");
  EXPECT_EQ(r->max_concurrent, 8);
  EXPECT_EQ(r->io_timeout_s, 30);
  EXPECT_EQ(r->drain_timeout_s, 45);
  EXPECT_EQ(r->metrics_listen, "127.0.0.1:9477");
  EXPECT_EQ(r->log_format, LogFormat::kJson);
  EXPECT_EQ(r->vm_dir, "/var/lib/relive/vms");
  EXPECT_EQ(r->ha_config, "/etc/relive/ha/redis.toml");
  EXPECT_EQ(r->runc_root, "/run/relive-runc");
  EXPECT_EQ(r->runc_bundles, "/var/lib/relive/bundles");
  EXPECT_EQ(r->runc_netns, "/run/netns/work");
}

TEST(RelivedConfig, EmptyFileGivesDefaults) {
  Result<RelivedConfig> r = parse_relived_config("");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->max_concurrent, 4);
  EXPECT_EQ(r->io_timeout_s, 60);
  EXPECT_EQ(r->drain_timeout_s, 120);
  EXPECT_EQ(r->state_dir, "/var/lib/relive");
  EXPECT_EQ(r->log_format, LogFormat::kHuman);
  EXPECT_TRUE(r->listen.empty());
  EXPECT_TRUE(r->metrics_listen.empty());
}

TEST(RelivedConfig, EmptyMetricsListenIsOff) {
  Result<RelivedConfig> r = parse_relived_config(with("metrics_listen", "metrics_listen = \"\""));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->metrics_listen.empty());
}

TEST(RelivedConfig, RejectsSyntaxErrorsWithLine) {
  std::string e = error_of("listen = \"198.18.0.2:7070\"\nname = \n");
  EXPECT_NE(e.find("t.toml:2:"), std::string::npos) << e;
}

TEST(RelivedConfig, RejectsUnknownKeys) {
  std::string e = error_of(with("max_concurrent", "max_concurent = 3"));
  EXPECT_NE(e.find("max_concurent"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;
  e = error_of(with("netns", "netns = \"/x\"\ncgroup = \"/y\""));
  EXPECT_NE(e.find("runc.cgroup"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;
}

struct BadValue {
  const char* line;     // replaces the line of its key
  const char* key;      // expected in the error, dotted
  const char* problem;  // expected in the error
};

TEST(RelivedConfig, RejectsEveryBadValueNamingItsKey) {
  const std::vector<BadValue> cases = {
      {"listen = \"198.18.0.2\"", "listen", "ADDR:PORT"},
      {"listen = \"198.18.0.2:99999\"", "listen", "ADDR:PORT"},
      {"listen = 7070", "listen", "must be a string, got an integer"},
      {"listen = \"\"", "listen", "must not be empty"},
      {"name = \"\"", "name", "must not be empty"},
      {"name = [\"a\"]", "name", "must be a string, got an array"},
      {"tls_dir = \"keys\"", "tls_dir", "absolute path"},
      {"insecure = \"yes\"", "insecure", "must be a boolean, got a string"},
      {"state_dir = \"var/lib\"", "state_dir", "absolute path"},
      {"work_dir = \"./w\"", "work_dir", "absolute path"},
      {"max_concurrent = 0", "max_concurrent", "between 1 and 1024, got 0"},
      {"max_concurrent = -1", "max_concurrent", "got -1"},
      {"max_concurrent = 2.5", "max_concurrent", "must be an integer, got a float"},
      {"io_timeout_s = 0", "io_timeout_s", "between 1 and 86400"},
      {"io_timeout_s = \"60\"", "io_timeout_s", "must be an integer, got a string"},
      {"drain_timeout_s = -1", "drain_timeout_s", "between 0 and 86400, got -1"},
      {"drain_timeout_s = 86401", "drain_timeout_s", "between 0 and 86400"},
      {"metrics_listen = \"localhost\"", "metrics_listen", "ADDR:PORT"},
      {"log_format = \"xml\"", "log_format", "\"human\" or \"json\""},
      {"log_format = true", "log_format", "must be a string, got a boolean"},
      {"vm_dir = \"vms\"", "vm_dir", "absolute path"},
      {"ha_config = \"pair.toml\"", "ha_config", "absolute path"},
      {"root = \"runc\"", "runc.root", "absolute path"},
      {"bundles = 3", "runc.bundles", "must be a string, got an integer"},
      {"netns = \"work\"", "runc.netns", "absolute path"},
  };
  for (const BadValue& c : cases) {
    std::string key = c.key;
    std::string bare = key.substr(key.rfind('.') == std::string::npos ? 0 : key.rfind('.') + 1);
    std::string e = error_of(with(bare + " = ", c.line));
    EXPECT_NE(e.find("t.toml: " + key + " (line "), std::string::npos) << c.line << ": " << e;
    EXPECT_NE(e.find(c.problem), std::string::npos) << c.line << ": " << e;
  }
}

TEST(RelivedConfig, RejectsRuncThatIsNotATable) {
  std::string e = error_of("runc = \"/run/runc\"\n");
  EXPECT_NE(e.find("runc (line 1): must be a table, got a string"), std::string::npos) << e;
}

TEST(RelivedConfig, TheExampleIsValid) {
  Result<RelivedConfig> r = load_relived_config(RELIVE_SOURCE_DIR "/examples/relived.toml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->listen, "198.18.0.2:7070");
  EXPECT_EQ(r->max_concurrent, 4);
  EXPECT_EQ(r->runc_bundles, "/var/lib/relive/runc-bundles");
}

TEST(RelivedConfig, LoadNamesAMissingFile) {
  Result<RelivedConfig> r = load_relived_config("/nonexistent/relived.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/relived.toml"), std::string::npos)
      << r.status().to_string();
}

// A config file in a temporary directory, removed afterwards.
class RelivedFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relived-config-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ::unlink(path("relived.toml").c_str());
    ::unlink(path("default.toml").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
  }

  // Parses `args` (after argv[0]) with relived's flags; default config: default.toml here.
  Result<RelivedConfig> resolve(std::vector<std::string> args) {
    CLI::App app;
    RelivedFlags flags(&app, path("default.toml"));
    std::vector<const char*> argv = {"relived"};
    for (const std::string& a : args) argv.push_back(a.c_str());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return Status::InvalidArgument(std::string("parse: ") + e.what());
    }
    Result<RelivedConfig> r = flags.resolve();
    used_ = flags.config_path();
    return r;
  }

  std::string dir_;
  std::string used_;
};

TEST_F(RelivedFlagsTest, FlagsOverrideTheFile) {
  write("relived.toml", kValid);
  Result<RelivedConfig> r = resolve(
      {"--config", path("relived.toml"), "--listen", "198.18.0.9:8080", "--max-concurrent", "2",
       "--log-format", "human", "--insecure", "--runc-root", "/run/other", "--drain-timeout", "0"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(used_, path("relived.toml"));
  EXPECT_EQ(r->listen, "198.18.0.9:8080");                // flag
  EXPECT_EQ(r->max_concurrent, 2);                        // flag
  EXPECT_EQ(r->drain_timeout_s, 0);                       // flag over the file's 45
  EXPECT_EQ(r->log_format, LogFormat::kHuman);            // flag over the file's json
  EXPECT_TRUE(r->insecure);                               // flag over the file's false
  EXPECT_EQ(r->runc_root, "/run/other");                  // flag over [runc] root
  EXPECT_EQ(r->name, "hostb");                            // file
  EXPECT_EQ(r->io_timeout_s, 30);                         // file
  EXPECT_EQ(r->metrics_listen, "127.0.0.1:9477");         // file
  EXPECT_EQ(r->runc_bundles, "/var/lib/relive/bundles");  // file
}

TEST_F(RelivedFlagsTest, AFlagLeftAtItsDefaultDoesNotOverride) {
  // The file says 8; not giving --max-concurrent must not bring back the flag's default 4.
  write("relived.toml", kValid);
  Result<RelivedConfig> r = resolve({"--config", path("relived.toml")});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->max_concurrent, 8);
  EXPECT_EQ(r->state_dir, "/var/lib/relive");
  EXPECT_EQ(r->log_format, LogFormat::kJson);
}

TEST_F(RelivedFlagsTest, ReadsTheDefaultFileOnlyWhenItExists) {
  Result<RelivedConfig> none = resolve({"--listen", "198.18.0.2:7070"});
  ASSERT_TRUE(none.ok()) << none.status().to_string();
  EXPECT_TRUE(used_.empty());
  EXPECT_EQ(none->max_concurrent, 4);
  write("default.toml", "max_concurrent = 3\n");
  Result<RelivedConfig> r = resolve({"--listen", "198.18.0.2:7070"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(used_, path("default.toml"));
  EXPECT_EQ(r->max_concurrent, 3);
}

TEST_F(RelivedFlagsTest, AnExplicitConfigMustExist) {
  Result<RelivedConfig> r = resolve({"--config", path("missing.toml")});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing.toml"), std::string::npos) << r.status().to_string();
}

TEST_F(RelivedFlagsTest, ABadFileIsAnErrorEvenWithFlags) {
  write("relived.toml", "max_concurrent = 0\n");
  Result<RelivedConfig> r = resolve({"--config", path("relived.toml"), "--max-concurrent", "2"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("max_concurrent (line 1)"), std::string::npos)
      << r.status().to_string();
}

TEST_F(RelivedFlagsTest, RejectsBadFlagsNamingThem) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--listen", "nowhere"}, "--listen: wants ADDR:PORT"},
      {{"--metrics-listen", "1.2.3.4"}, "--metrics-listen: wants ADDR:PORT"},
      {{"--max-concurrent", "0"}, "--max-concurrent: must be between 1 and 1024, got 0"},
      {{"--io-timeout", "0"}, "--io-timeout: must be between 1 and 86400"},
      {{"--drain-timeout", "-5"}, "--drain-timeout: must be between 0 and 86400, got -5"},
      {{"--log-format", "xml"}, "--log-format: must be \"human\" or \"json\""},
      {{"--state-dir", "rel"}, "--state-dir: must be an absolute path"},
      {{"--tls-dir", "rel"}, "--tls-dir: must be an absolute path"},
      {{"--work-dir", "rel"}, "--work-dir: must be an absolute path"},
      {{"--vm-dir", "rel"}, "--vm-dir: must be an absolute path"},
      {{"--ha-config", "pair.toml"}, "--ha-config: must be an absolute path"},
      {{"--runc-root", "rel"}, "--runc-root: must be an absolute path"},
      {{"--runc-bundles", "rel"}, "--runc-bundles: must be an absolute path"},
      {{"--runc-netns", "rel"}, "--runc-netns: must be an absolute path"},
      {{"--once", "-1"}, "--once: must not be negative"},
  };
  for (const auto& [args, expected] : cases) {
    Result<RelivedConfig> r = resolve(args);
    ASSERT_FALSE(r.ok()) << args[0];
    EXPECT_NE(r.status().message().find(expected), std::string::npos)
        << args[0] << ": " << r.status().to_string();
  }
}

TEST_F(RelivedFlagsTest, AnEmptyMetricsListenFlagTurnsTheFilesOff) {
  write("relived.toml", kValid);
  Result<RelivedConfig> r = resolve({"--config", path("relived.toml"), "--metrics-listen", ""});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->metrics_listen.empty());
}

}  // namespace
}  // namespace relive::cli
