#include "ha/ha_config.h"

#include <gtest/gtest.h>

#include <string>

namespace relive::ha {
namespace {

const char* kValid = R"(
tls_dir = "/etc/relive/tls"
epoch_ms = 50
heartbeat_ms = 20
failure_timeout_ms = 200
[[peers]]
name = "a"
address = "198.18.0.1:7411"
[[peers]]
name = "b"
address = "[fd00::2]:7411"
[etcd]
endpoints = ["http://127.0.0.1:2379", "http://127.0.0.2:2379/"]
lease_key = "/relive/ha/x"
lease_ttl_s = 3
[workload]
command = ["/usr/bin/redis-server", "--port", "6379"]
directory = "/var/lib/x"
service_address = "198.18.0.10/24"
netns = "rx"
output_queue = 7
[limits]
max_held_packets = 100
)";

// kValid with one line replaced (or removed when `to` is empty).
std::string with(const std::string& from, const std::string& to) {
  std::string s = kValid;
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  size_t eol = s.find('\n', at);
  s.replace(at, eol - at, to);
  return s;
}

std::string error_of(const std::string& text) {
  Result<HaConfig> r = parse_ha_config(text, "t.toml");
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  return r.status().message();
}

TEST(HaConfig, ParsesEveryKey) {
  Result<HaConfig> r = parse_ha_config(kValid);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const HaConfig& c = *r;
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[0].host, "198.18.0.1");
  EXPECT_EQ(c.peers[1].host, "fd00::2");
  EXPECT_EQ(c.peers[1].port, 7411);
  ASSERT_NE(c.peer("b"), nullptr);
  EXPECT_EQ(c.peer("zz"), nullptr);
  EXPECT_EQ(c.epoch_ms, 50u);
  EXPECT_EQ(c.heartbeat_ms, 20u);
  EXPECT_EQ(c.failure_timeout_ms, 200u);
  EXPECT_EQ(c.etcd.endpoints.size(), 2u);
  EXPECT_EQ(c.etcd.lease_key, "/relive/ha/x");
  EXPECT_EQ(c.etcd.lease_ttl_s, 3u);
  EXPECT_EQ(c.etcd.fence_ms, 1500u) << "half the TTL when not given";
  EXPECT_EQ(c.workload.command.size(), 3u);
  EXPECT_EQ(c.workload.service_address, "198.18.0.10");
  EXPECT_EQ(c.workload.service_prefix_len, 24);
  EXPECT_EQ(c.workload.netns, "rx");
  EXPECT_EQ(c.workload.output_queue, 7);
  EXPECT_EQ(c.limits.max_held_packets, 100u);
}

TEST(HaConfig, AppliesDefaults) {
  std::string s = with("epoch_ms = 50", "");
  s = std::string(s).replace(s.find("heartbeat_ms = 20"), 17, "");
  s = std::string(s).replace(s.find("failure_timeout_ms = 200"), 24, "");
  s = s.substr(0, s.find("[limits]"));
  Result<HaConfig> r = parse_ha_config(s);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->epoch_ms, 25u);
  EXPECT_EQ(r->heartbeat_ms, 100u);
  EXPECT_EQ(r->failure_timeout_ms, 1000u);
  EXPECT_EQ(r->limits.max_held_packets, 65536u);
}

TEST(HaConfig, ExampleFileParses) {
  Result<HaConfig> r = load_ha_config(std::string(RELIVE_SOURCE_DIR) + "/examples/ha-pair.toml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->epoch_ms, 25u);
  EXPECT_EQ(r->workload.command[0], "/usr/bin/redis-server");
}

TEST(HaConfig, VmExampleFileParses) {
  Result<HaConfig> r = load_ha_config(std::string(RELIVE_SOURCE_DIR) + "/examples/vm-ha-pair.toml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->workload.kind, WorkloadKind::kVm);
  EXPECT_EQ(r->workload.ram_bytes, 256ull << 20);
}

TEST(HaConfig, RejectsSyntaxErrorWithPosition) {
  std::string m = error_of("epoch_ms = = 3\n");
  EXPECT_NE(m.find("t.toml:1:"), std::string::npos) << m;
}

TEST(HaConfig, RejectsMissingKeys) {
  EXPECT_EQ(error_of(with("tls_dir =", "")), "t.toml: tls_dir: missing");
  EXPECT_EQ(error_of(with("lease_key =", "")), "t.toml: etcd.lease_key: missing");
  EXPECT_EQ(error_of(with("netns =", "")), "t.toml: workload.netns: missing");
  EXPECT_EQ(error_of(with("command =", "")), "t.toml: workload.command: missing");
  std::string no_etcd = with("[etcd]", "[etcd_x]");
  EXPECT_EQ(error_of(no_etcd), "t.toml: etcd: missing");
  EXPECT_EQ(error_of("tls_dir = \"/x\"\n"), "t.toml: peers: missing");
}

TEST(HaConfig, RejectsBadNumbers) {
  EXPECT_EQ(error_of(with("epoch_ms = 50", "epoch_ms = 0")),
            "t.toml: epoch_ms (line 3): must be between 1 and 10000, got 0");
  EXPECT_EQ(error_of(with("epoch_ms = 50", "epoch_ms = -5")),
            "t.toml: epoch_ms (line 3): must be between 1 and 10000, got -5");
  EXPECT_EQ(error_of(with("epoch_ms = 50", "epoch_ms = \"25\"")),
            "t.toml: epoch_ms (line 3): must be an integer, got a string");
  EXPECT_EQ(error_of(with("epoch_ms = 50", "epoch_ms = 2.5")),
            "t.toml: epoch_ms (line 3): must be an integer, got a float");
  EXPECT_EQ(error_of(with("failure_timeout_ms = 200", "failure_timeout_ms = 30")),
            "t.toml: failure_timeout_ms (line 5): must be at least 2 * heartbeat_ms (40), got 30");
  EXPECT_EQ(error_of(with("lease_ttl_s = 3", "lease_ttl_s = 0")),
            "t.toml: etcd.lease_ttl_s (line 15): must be between 1 and 3600, got 0");
  EXPECT_EQ(error_of(with("lease_ttl_s = 3", "lease_ttl_s = 3\nfence_ms = 50")),
            "t.toml: etcd.fence_ms (line 16): must be 0 or at least 100, got 50");
  EXPECT_EQ(error_of(with("lease_ttl_s = 3", "lease_ttl_s = 3\nfence_ms = 3001")),
            "t.toml: etcd.fence_ms (line 16): must be between 0 and 3000, got 3001");
  Result<HaConfig> off = parse_ha_config(with("lease_ttl_s = 3", "lease_ttl_s = 3\nfence_ms = 0"));
  ASSERT_TRUE(off.ok()) << off.status().to_string();
  EXPECT_EQ(off->etcd.fence_ms, 0u);
  EXPECT_EQ(error_of(with("output_queue = 7", "output_queue = 70000")),
            "t.toml: workload.output_queue (line 21): must be between 0 and 65534, got 70000");
  EXPECT_EQ(error_of(with("max_held_packets = 100", "max_held_packets = 1")),
            "t.toml: limits.max_held_packets (line 23): must be between 16 and 1048576, got 1");
}

TEST(HaConfig, RejectsBadPeers) {
  EXPECT_EQ(error_of(with("name = \"b\"", "name = \"a\"")),
            "t.toml: peers[1].name (line 10): duplicate peer name 'a'");
  EXPECT_EQ(error_of(with("name = \"b\"", "name = \"B c\"")),
            "t.toml: peers[1].name (line 10): must be 1-32 of [a-z0-9_-], got 'B c'");
  EXPECT_EQ(error_of(with("address = \"198.18.0.1:7411\"", "address = \"198.18.0.1\"")),
            "t.toml: peers[0].address (line 8): expected HOST:PORT, got '198.18.0.1'");
  EXPECT_EQ(error_of(with("address = \"198.18.0.1:7411\"", "address = \"h:99999\"")),
            "t.toml: peers[0].address (line 8): port must be between 1 and 65535, got 'h:99999'");
  std::string three = std::string(kValid) + "";
  three.insert(three.find("[etcd]"), "[[peers]]\nname = \"c\"\naddress = \"c:1\"\n");
  EXPECT_EQ(error_of(three), "t.toml: peers (line 6): an HA pair has exactly 2 peers, got 3");
  EXPECT_EQ(error_of("peers = 3\n"),
            "t.toml: peers (line 1): must be an array of tables ([[peers]])");
}

TEST(HaConfig, RejectsBadStringsAndPaths) {
  EXPECT_EQ(error_of(with("tls_dir =", "tls_dir = \"tls\"")),
            "t.toml: tls_dir (line 2): must be an absolute path, got 'tls'");
  EXPECT_EQ(error_of(with("tls_dir =", "tls_dir = \"\"")),
            "t.toml: tls_dir (line 2): must not be empty");
  EXPECT_EQ(error_of(with("endpoints =", "endpoints = [\"https://e:2379\"]")),
            "t.toml: etcd.endpoints (line 13): 'https://e:2379' must start with http:// (TLS to "
            "etcd is not supported yet)");
  EXPECT_EQ(error_of(with("endpoints =", "endpoints = []")),
            "t.toml: etcd.endpoints (line 13): must not be empty");
  EXPECT_EQ(error_of(with("endpoints =", "endpoints = [\"http://e\"]")),
            "t.toml: etcd.endpoints (line 13): 'http://e': expected HOST:PORT");
  EXPECT_EQ(error_of(with("lease_key =", "lease_key = \"relive\"")),
            "t.toml: etcd.lease_key (line 14): must start with '/', got 'relive'");
  EXPECT_EQ(error_of(with("command =", "command = [\"redis-server\"]")),
            "t.toml: workload.command (line 17): command[0] must be an absolute path, got "
            "'redis-server'");
  EXPECT_EQ(error_of(with("command =", "command = [\"/bin/x\", 3]")),
            "t.toml: workload.command (line 17): element 1 must be a string");
  EXPECT_EQ(error_of(with("command =", "command = \"/bin/x\"")),
            "t.toml: workload.command (line 17): must be an array of strings, got a string");
  EXPECT_EQ(error_of(with("service_address =", "service_address = \"198.18.0.300/24\"")),
            "t.toml: workload.service_address (line 19): not an IPv4 address, got "
            "'198.18.0.300/24'");
  EXPECT_EQ(error_of(with("service_address =", "service_address = \"198.18.0.3\"")),
            "t.toml: workload.service_address (line 19): missing prefix length (/N), got "
            "'198.18.0.3'");
  EXPECT_EQ(error_of(with("service_address =", "service_address = \"198.18.0.3/33\"")),
            "t.toml: workload.service_address (line 19): prefix length must be 0-32, got "
            "'198.18.0.3/33'");
  EXPECT_EQ(error_of(with("netns =", "netns = \"../x\"")),
            "t.toml: workload.netns (line 20): network namespace '../x': may hold only letters, "
            "digits, '.', '_' and '-'");
}

// The namespace name reaches `ip netns` as root: a shell command in it must never get that far.
TEST(HaConfig, RejectsNetnsThatIsNotAPlainName) {
  EXPECT_EQ(error_of(with("netns =", "netns = \"rx;touch${IFS}.pwned;#\"")),
            "t.toml: workload.netns (line 20): network namespace 'rx;touch${IFS}.pwned;#': may "
            "hold only letters, digits, '.', '_' and '-'");
  EXPECT_EQ(error_of(with("netns =", "netns = \"-n\"")),
            "t.toml: workload.netns (line 20): network namespace '-n': must not start with '-' "
            "or '.'");
  EXPECT_EQ(error_of(with("netns =", "netns = \"\"")),
            "t.toml: workload.netns (line 20): must not be empty");
  EXPECT_NE(error_of(with("netns =", "netns = \"$(reboot)\"")).find("may hold only"),
            std::string::npos);
}

TEST(HaConfig, RejectsUnknownKeys) {
  EXPECT_EQ(error_of(with("epoch_ms = 50", "epoch_msec = 50")),
            "t.toml: epoch_msec (line 3): unknown key");
  EXPECT_EQ(error_of(with("netns =", "net_ns = \"x\"")), "t.toml: workload.netns: missing");
  EXPECT_EQ(error_of(with("output_queue = 7", "output_queue = 7\nqueue = 1")),
            "t.toml: workload.queue (line 22): unknown key");
  EXPECT_EQ(error_of(with("max_held_packets = 100", "max_held = 100")),
            "t.toml: limits.max_held (line 23): unknown key");
  EXPECT_EQ(error_of(with("lease_ttl_s = 3", "lease_ttl_s = 3\nttl = 3")),
            "t.toml: etcd.ttl (line 16): unknown key");
}

// kValid's workload as a VM with `args` after the binary.
std::string vm(const std::string& args) {
  return with("command = [\"/usr/bin/redis-server\", \"--port\", \"6379\"]",
              "kind = \"vm\"\ncommand = [\"/usr/bin/qemu-system-x86_64\"" + args + "]");
}

TEST(HaConfig, ParsesAVmWorkload) {
  Result<HaConfig> r = parse_ha_config(
      vm(", \"-m\", \"256M\", \"-device\", \"e1000,netdev=relive-net\"") + "\n[workload.x]\n",
      "t.toml");
  // (the stray table only checks that unknown keys are still refused after a VM's)
  ASSERT_FALSE(r.ok());
  r = parse_ha_config(vm(", \"-m\", \"256M\", \"-device\", \"e1000,netdev=relive-net\""), "t.toml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->workload.kind, WorkloadKind::kVm);
  EXPECT_EQ(r->workload.ram_bytes, 256ull << 20);
  EXPECT_EQ(r->workload.ram_dir, "/dev/shm");
  Result<HaConfig> p = parse_ha_config(kValid, "t.toml");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->workload.kind, WorkloadKind::kProcess);
}

TEST(HaConfig, RejectsWhatAVmWorkloadMustNotHave) {
  const std::string nic = ", \"-device\", \"e1000,netdev=relive-net\"";
  EXPECT_NE(error_of(vm(nic + ", \"-hda\", \"/disk.img\"")).find("-hda is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(vm(nic + ", \"-blockdev\", \"driver=raw\"")).find("give each disk as -drive"),
            std::string::npos);
  EXPECT_NE(error_of(vm(nic + ", \"-qmp\", \"unix:/x\"")).find("-qmp is not allowed"),
            std::string::npos);
  EXPECT_NE(error_of(vm(", \"-m\", \"64\"")).find("needs a NIC on relived's network backend"),
            std::string::npos);
  EXPECT_NE(error_of(vm(nic + ", \"-machine\", \"pc,memory-backend=m0\""))
                .find("relived provides the guest RAM"),
            std::string::npos);
  EXPECT_NE(error_of(vm(nic + ", \"-m\", \"lots\"")).find("not a memory size"), std::string::npos);
  EXPECT_EQ(error_of(with("command = [\"/usr/bin/redis-server\", \"--port\", \"6379\"]",
                          "kind = \"vm\"\ncommand = [\"/usr/bin/redis-server\"]")),
            "t.toml: workload.command (line 18): not a qemu-system binary: /usr/bin/redis-server");
  EXPECT_EQ(error_of(with("netns = \"rx\"", "netns = \"rx\"\nkind = \"container\"")),
            "t.toml: workload.kind (line 21): must be \"process\" or \"vm\", got 'container'");
}

TEST(HaConfig, ParsesTheDisksOfAVm) {
  const std::string nic = ", \"-device\", \"e1000,netdev=relive-net\"";
  Result<HaConfig> r = parse_ha_config(
      vm(nic + ", \"-drive\", \"file=/vm/a.raw,format=raw,if=virtio,id=d0\", \"-drive\", "
               "\"id=d1,format=qcow2,file=/vm/b.qcow2\""),
      "t.toml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->workload.disks.size(), 2u);
  EXPECT_EQ(r->workload.disks[0].id, "d0");
  EXPECT_EQ(r->workload.disks[0].file, "/vm/a.raw");
  EXPECT_EQ(r->workload.disks[0].format, "raw");
  EXPECT_EQ(r->workload.disks[1].id, "d1");
  EXPECT_EQ(r->workload.disks[1].format, "qcow2");
}

TEST(HaConfig, RejectsADiskItCannotReplicate) {
  const std::string nic = ", \"-device\", \"e1000,netdev=relive-net\"";
  auto drive = [&](const std::string& d) {
    return error_of(vm(nic + ", \"-drive\", \"" + d + "\""));
  };
  EXPECT_NE(drive("file=/a.raw,format=raw").find("needs an id="), std::string::npos);
  EXPECT_NE(drive("file=/a.raw,format=raw,id=a;b").find("drive id 'a;b'"), std::string::npos);
  EXPECT_NE(drive("file=a.raw,format=raw,id=d0").find("file= must be an absolute path"),
            std::string::npos);
  EXPECT_NE(drive("file=/a.raw,id=d0").find("format= must be raw or qcow2"), std::string::npos);
  EXPECT_NE(drive("file=/a.vmdk,format=vmdk,id=d0").find("format= must be raw or qcow2"),
            std::string::npos);
  EXPECT_NE(drive("file=/a.raw,format=raw,id=d0,snapshot=on").find("snapshot= is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(vm(nic + ", \"-drive\", \"file=/a,format=raw,id=d0\", \"-drive\", "
                              "\"file=/b,format=raw,id=d0\""))
                .find("duplicate drive id 'd0'"),
            std::string::npos);
}

}  // namespace
}  // namespace relive::ha
