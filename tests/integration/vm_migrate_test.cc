// VM live migration end to end: a real QEMU (TCG) running the test guest
// (scripts/build-guest.sh) in one network-namespace host, relived in another; `relive migrate
// --vm` drives QEMU's own migration over QEMU's TLS. The guest counts on its serial port; the
// count must carry on at the destination where it stopped at the source.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "drivers/qemu/qmp_client.h"
#include "netns_hosts.h"
#include "relived_fixture.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The counter values of the complete "relive-counter N" lines of a serial log.
std::vector<int> counters(const std::string& file) {
  static const std::regex kLine("relive-counter ([0-9]+)");
  std::vector<int> out;
  std::string all = read_all(file);
  size_t pos = 0;
  for (size_t nl; (nl = all.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    std::smatch m;
    std::string line = all.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();  // the tty's ONLCR
    if (std::regex_match(line, m, kLine)) out.push_back(std::stoi(m[1]));
  }
  return out;
}

int last_counter(const std::string& file) {
  std::vector<int> c = counters(file);
  return c.empty() ? -1 : c.back();
}

Result<nlohmann::json> qmp_query_status(const std::string& socket) {
  RELIVE_ASSIGN_OR_RETURN(qemu::QmpClient c, qemu::QmpClient::connect(socket, seconds(10)));
  return c.execute("query-status");
}

class VmMigrate : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    guest_ = test_guest_dir();
    ASSERT_FALSE(guest_.empty()) << "no test guest (run scripts/bootstrap.sh)";
    ASSERT_TRUE(hosts_.ok()) << "could not create the test hosts";
    ASSERT_EQ(
        run({relive_bin(), "keys", "init", dir_ / "keys", "--hosts", "hosta,hostb"}).exit_code, 0);
    ASSERT_EQ(sh("mkdir -p " + dir_ / "src"), 0);
  }

  void start_relived() {
    relive::testing::start_relived(
        hosts_, dir_, {"--vm-dir", dir_ / "vms", "--tls-dir", dir_ / "keys", "--name", "hostb"},
        &relived_);
  }

  // QEMU running the test guest with its monitor on `qmp_socket`: with an e1000 on slirp whose
  // echo server is forwarded from 127.0.0.1:17007, or recording itself (one vCPU, no network:
  // slirp's input would need filter-replay).
  std::vector<std::string> guest_argv(const std::string& qmp_socket, const std::string& append,
                                      bool record) const {
    std::vector<std::string> argv = test_guest_argv(guest_, qmp_socket, append);
    std::vector<std::string> net = {"-netdev",
                                    "user,id=n0,net=198.18.0.0/24,host=198.18.0.2,"
                                    "hostfwd=tcp:127.0.0.1:17007-198.18.0.10:7",
                                    "-device", "e1000,netdev=n0,romfile="};
    std::vector<std::string> rr = {"-icount", "shift=auto,rr=record,rrfile=vm.rr"};
    argv.insert(argv.end(), record ? rr.begin() : net.begin(), record ? rr.end() : net.end());
    return argv;
  }

  // The guest in host a, its serial port on src/serial.log (relative: at the destination it
  // lands in the VM's own directory). With `tap`, its NIC's backend is that tap device instead
  // of slirp.
  void start_vm(const std::string& append = "", bool record = false, const std::string& tap = "") {
    std::vector<std::string> argv = guest_argv(qmp(), append, record);
    if (!tap.empty()) {
      auto n = std::find(argv.begin(), argv.end(), "-netdev");
      *(n + 1) = "tap,id=n0,ifname=" + tap + ",script=no,downscript=no";
    }
    argv.insert(argv.begin(), "--wd=" + dir_ / "src");
    vm_ = std::make_unique<Background>(hosts_.in('a', argv), dir_ / "src/qemu.out",
                                       dir_ / "src/qemu.out");
    ASSERT_TRUE(eventually([&] { return last_counter(serial()) >= 10; }, seconds(120)))
        << "the guest did not boot: " << read_all(dir_ / "src/qemu.out");
  }

  std::vector<std::string> migrate_argv(const std::string& strategy,
                                        const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {
        relive_bin(), "migrate",     "--vm",   qmp(),       "--to",        relived_address(hosts_),
        "--strategy", strategy,      "--json", "--tls-dir", dir_ / "keys", "--name",
        "hosta",      "--peer-name", "hostb"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return hosts_.in('a', argv);
  }

  // Migrates the running guest and checks that it counts on at the destination from where it
  // stopped at the source, that the source QEMU ended and that the destination runs.
  nlohmann::json migrate_and_check(const std::string& strategy,
                                   const std::vector<std::string>& extra = {}, int carry_on = 20) {
    RunResult r = run(migrate_argv(strategy, extra), 300);
    EXPECT_EQ(r.exit_code, 0) << r.err << read_all(dir_ / "relived.err");
    if (r.exit_code != 0) return nullptr;
    nlohmann::json report = nlohmann::json::parse(r.out);
    std::fprintf(stderr, "%s report: %s\n", strategy.c_str(), report.dump().c_str());
    EXPECT_GT(report["bytes_total"].get<uint64_t>(), 0u);
    EXPECT_GT(report["downtime_ms"].get<double>(), 0.0);
    EXPECT_GT(report["total_ms"].get<double>(), 0.0);
    EXPECT_GE(vm_->wait_exit(seconds(30)), 0) << "the source QEMU must end after the switch-over";
    std::string dest_serial = report["vm_dir"].get<std::string>() + "/serial.log";
    int at_source = last_counter(serial());
    EXPECT_TRUE(
        eventually([&] { return last_counter(dest_serial) >= at_source + carry_on; }, seconds(180)))
        << "the counter did not carry on at the destination";
    std::vector<int> dest = counters(dest_serial);
    EXPECT_FALSE(dest.empty());
    if (!dest.empty()) {
      EXPECT_GT(dest.front(), at_source) << "restarted instead of continuing";
      EXPECT_LE(dest.front(), at_source + 2) << "values lost at the switch-over";
    }
    Result<nlohmann::json> st = qmp_query_status(report["vm_dir"].get<std::string>() + "/qmp.sock");
    EXPECT_TRUE(st.ok() && (*st)["status"] == "running") << (st.ok() ? st->dump() : "");
    std::string out = read_all(dir_ / "relived.out");
    EXPECT_NE(out.find("\"event\":\"migrated\""), std::string::npos) << out;
    dest_pid_ = report["destination_pid"].get<pid_t>();
    return report;
  }

  void TearDown() override {
    if (dest_pid_ > 0) ::kill(dest_pid_, SIGKILL);
  }

  // Kills the destination's relived while `migration` runs: the migration must fail and roll
  // back, and the source VM run on (QMP says running, the counter advances). `err`: its stderr.
  void kill_destination_and_expect_the_source_runs_on(Background* migration, std::string* err) {
    relived_->stop();
    int rc = migration->wait_exit(seconds(120));
    EXPECT_NE(rc, 0) << read_all(dir_ / "migrate.out");
    EXPECT_NE(rc, -1) << "relive migrate did not give up";
    *err = read_all(dir_ / "migrate.err");
    EXPECT_NE(err->find("rolled back"), std::string::npos) << *err;
    ASSERT_TRUE(vm_->running());
    Result<nlohmann::json> st = qmp_query_status(qmp());
    ASSERT_TRUE(st.ok()) << st.status().to_string();
    EXPECT_EQ((*st)["status"], "running") << st->dump();
    int before = last_counter(serial());
    EXPECT_TRUE(eventually([&] { return last_counter(serial()) >= before + 10; }, seconds(60)));
  }

  // What an operator sets up for a VM that holds `svc` behind `tap` on `host`: the tap, the host
  // route into it, proxy ARP and forwarding.
  void route_into_tap(char host, const std::string& svc, const std::string& tap) {
    ASSERT_EQ(hosts_.sh_in(host, "ip tuntap add dev " + tap + " mode tap && ip link set " + tap +
                                     " up && sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf." +
                                     tap + ".proxy_arp=1 net.ipv4.conf." + hosts_.device(host) +
                                     ".proxy_arp=1 && ip route add " + svc + "/32 dev " + tap),
              0);
  }

  std::string qmp() const { return dir_ / "src/qmp.sock"; }
  std::string serial() const { return dir_ / "src/serial.log"; }

  NetnsHosts hosts_{"rvm" + std::to_string(::getpid() % 100000), 2};
  TempDir dir_;
  std::string guest_;
  std::unique_ptr<Background> relived_;
  std::unique_ptr<Background> vm_;
  pid_t dest_pid_ = 0;
};

TEST_F(VmMigrate, PrecopyCounterCarriesOn) {
  start_relived();
  start_vm();
  nlohmann::json report = migrate_and_check("precopy");
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["strategy"], "precopy");
  EXPECT_GT(report["bytes_by_phase"]["precopy"].get<uint64_t>(), 0u);
  // The guest's echo server answers at the destination.
  RunResult echo = run(hosts_.in('b', {"/usr/bin/python3", "-c",
                                       "import socket; s = socket.create_connection(('127.0.0.1', "
                                       "17007), timeout=30); s.sendall(b'ping\\n'); "
                                       "print(s.recv(16).decode().strip())"}),
                       60);
  EXPECT_EQ(echo.out, "ping\n") << echo.err;
}

TEST_F(VmMigrate, PostcopyCounterCarriesOn) {
  start_relived();
  start_vm();
  nlohmann::json report = migrate_and_check("postcopy");
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["strategy"], "postcopy");
  EXPECT_GT(report["bytes_by_phase"]["postcopy"].get<uint64_t>(), 0u);
}

// On a guest pre-copy can move, auto is pre-copy.
TEST_F(VmMigrate, AutoStaysPrecopyWhenItConverges) {
  start_relived();
  start_vm();
  nlohmann::json report = migrate_and_check("auto");
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["strategy"], "precopy") << report.dump();
}

// The baseline bench/vm_migrate.py sets relive's strategies against: QEMU's own migration with
// every default, driven by hand over QMP as an operator would (destination QEMU started with
// -incoming, `migrate tcp:`, plaintext), between the same two hosts. It must work here, and it
// reports its figures in relive's format ("qemu-defaults report: {...}").
TEST_F(VmMigrate, QemuDefaultsByHandBaseline) {
  start_vm();
  ASSERT_EQ(sh("mkdir -p " + dir_ / "dst"), 0);
  std::string to = "tcp:" + hosts_.address('b') + ":4444";
  std::vector<std::string> argv = guest_argv(dir_ / "dst/qmp.sock", "", false);
  argv.insert(argv.begin(), "--wd=" + dir_ / "dst");
  argv.insert(argv.end(), {"-incoming", to});
  Background dst(hosts_.in('b', argv), dir_ / "dst/qemu.out", dir_ / "dst/qemu.out");
  Result<qemu::QmpClient> d = qemu::QmpClient::connect(dir_ / "dst/qmp.sock", seconds(30));
  ASSERT_TRUE(d.ok()) << d.status().to_string() << read_all(dir_ / "dst/qemu.out");
  Result<qemu::QmpClient> q = qemu::QmpClient::connect(qmp(), seconds(30));
  ASSERT_TRUE(q.ok()) << q.status().to_string();
  ASSERT_TRUE(q->execute("migrate", {{"uri", to}}).ok());
  nlohmann::json info;
  ASSERT_TRUE(eventually(
      [&] {
        Result<nlohmann::json> r = q->execute("query-migrate");
        if (r.ok()) info = *r;
        // Passing states (setup, active, device, pre-switchover...) come and go; wait for an
        // end: completed, failed or cancelled.
        std::string status = r.ok() ? info.value("status", "") : "";
        return status == "completed" || status == "failed" || status == "cancelled";
      },
      seconds(300)));
  ASSERT_EQ(info.value("status", ""), "completed") << info.dump();
  int at_source = last_counter(serial());
  EXPECT_TRUE(eventually([&] { return last_counter(dir_ / "dst/serial.log") >= at_source + 20; },
                         seconds(180)))
      << "the counter did not carry on at the destination";
  nlohmann::json report = {{"strategy", "qemu-defaults"},
                           {"downtime_ms", info.value("downtime", 0)},
                           {"total_ms", info.value("total-time", 0)},
                           {"bytes_total", info["ram"].value("transferred", 0)}};
  std::fprintf(stderr, "qemu-defaults report: %s\n", report.dump().c_str());
  EXPECT_GT(report["bytes_total"].get<uint64_t>(), 0u);
}

// The guest holds a service address behind a tap on its host (set up here as an operator
// would: the host routes the address into the tap and answers ARP for it); a client on a third
// host holds a TCP connection to the guest's echo server across the migration: relived gives
// the destination's tap the source's MAC, routes and announces the address at the commit, and
// the source host stops answering for it.
TEST_F(VmMigrate, PrecopyKeepsAClientConnectionToTheServiceAddress) {
  const std::string svc = "198.18.2.10", tap = "vmtap0";
  ASSERT_NO_FATAL_FAILURE(route_into_tap('a', svc, tap));
  start_relived();
  start_vm("relive.ip=" + svc + "/24", false, tap);
  std::string script =
      "exec 3<>/dev/tcp/" + svc +
      "/7 || exit 1; i=0; while :; do i=$((i+1)); echo e$i >&3; "
      "read -r -t 20 l <&3 || exit 2; [ \"$l\" = \"e$i\" ] || exit 3; echo $i; sleep 0.1; done";
  Background client(hosts_.in('c', {"/bin/bash", "-c", script}), dir_ / "echoes",
                    dir_ / "client.err");
  auto echoed = [&] {
    std::string e = read_all(dir_ / "echoes");
    return static_cast<long>(std::count(e.begin(), e.end(), '\n'));
  };
  ASSERT_TRUE(eventually([&] { return echoed() >= 10; }, seconds(120)))
      << "the guest's echo server did not answer: " << read_all(dir_ / "client.err");
  nlohmann::json report = migrate_and_check("precopy", {"--service-address", svc + "/24"});
  ASSERT_TRUE(report.is_object());
  long before = echoed();
  EXPECT_TRUE(eventually([&] { return echoed() >= before + 20; }, seconds(60)))
      << "no echoes on the same connection after the migration: " << read_all(dir_ / "client.err");
  EXPECT_TRUE(client.running()) << "the connection broke: " << read_all(dir_ / "client.err");
  EXPECT_NE(hosts_.sh_in('a', "ip route show " + svc + " | grep -q " + tap), 0)
      << "the source host still routes the service address";
  EXPECT_EQ(hosts_.sh_in('b', "ip route show " + svc + " | grep -q " + tap), 0)
      << "the destination host does not route the service address";
}

// The destination already has an interface of the tap's name (another VM's, say): relived
// refuses to take it, the migration fails, the source VM runs on and keeps its address, and the
// destination's interface is untouched.
TEST_F(VmMigrate, ServiceAddressRefusesATapThatExistsAtTheDestination) {
  const std::string svc = "198.18.2.10", tap = "vmtap0";
  ASSERT_NO_FATAL_FAILURE(route_into_tap('a', svc, tap));
  ASSERT_EQ(hosts_.sh_in('b', "ip tuntap add dev " + tap + " mode tap"), 0);
  start_relived();
  start_vm("relive.ip=" + svc + "/24", false, tap);
  RunResult r = run(migrate_argv("precopy", {"--service-address", svc + "/24"}), 120);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  Result<nlohmann::json> st = qmp_query_status(qmp());
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ((*st)["status"], "running");
  EXPECT_EQ(hosts_.sh_in('a', "ip route show " + svc + " | grep -q " + tap), 0)
      << "the source host lost the service address's route";
  EXPECT_EQ(hosts_.sh_in('b', "ip link show " + tap + " >/dev/null"), 0)
      << "the destination's own interface was removed";
}

// A guest that rewrites 64 MiB in a loop, behind a 16 MB/s link: pre-copy needs many passes
// (11 in a measured run) and auto gives up on it after 5.
TEST_F(VmMigrate, AutoTurnsToPostcopyWhenPrecopyCannotKeepUp) {
  start_relived();
  start_vm("relive.dirty=64");
  nlohmann::json report =
      migrate_and_check("auto", {"--max-bandwidth", "16000000", "--max-rounds", "5"});
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["strategy"], "postcopy");
  EXPECT_NE(report["reason"].get<std::string>().find("did not converge"), std::string::npos)
      << report.dump();
}

// The destination's relived dies mid-migration: its QEMU goes with it, the migration fails,
// and the source VM runs on (QMP says running, the counter advances).
TEST_F(VmMigrate, SourceRunsOnWhenTheDestinationDies) {
  start_relived();
  start_vm();
  Background migration(migrate_argv("precopy", {"--max-bandwidth", "2000000"}),
                       dir_ / "migrate.out", dir_ / "migrate.err");
  ASSERT_TRUE(eventually(
      [&] { return read_all(dir_ / "migrate.err").find("migrating to") != std::string::npos; },
      seconds(60)))
      << read_all(dir_ / "migrate.err") << read_all(dir_ / "relived.err");
  std::string err;
  ASSERT_NO_FATAL_FAILURE(kill_destination_and_expect_the_source_runs_on(&migration, &err));
  // The destination QEMU did not survive its relived.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(err, m, std::regex("destination QEMU pid ([0-9]+)"))) << err;
  pid_t dest = std::stoi(m[1]);
  EXPECT_TRUE(eventually([&] { return ::kill(dest, 0) != 0; }, seconds(10)));
}

// Log shipping: the source QEMU records (rr=record); its log goes to relived in rounds, where a
// QEMU replays it, then hands the VM over to a live QEMU (savevm/loadvm). The live QEMU's guest
// is slow to resume (docs/vm.md): only a few counter values are awaited.
TEST_F(VmMigrate, LogShippingCounterCarriesOn) {
  start_relived();
  start_vm("", /*record=*/true);
  nlohmann::json report = migrate_and_check("log-shipping", {}, 3);
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["strategy"], "log-shipping");
  EXPECT_GT(report["bytes_by_phase"]["log"].get<uint64_t>(), 0u);
  EXPECT_GT(report["bytes_by_phase"]["downtime"].get<uint64_t>(), 0u);
}

TEST_F(VmMigrate, LogShippingRefusesAVmThatDoesNotRecord) {
  start_relived();
  start_vm();
  RunResult r = run(migrate_argv("log-shipping"), 120);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("record mode"), std::string::npos) << r.err;
  Result<nlohmann::json> st = qmp_query_status(qmp());
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ((*st)["status"], "running");
}

// relived dies while log rounds flow: the source VM runs on, still recording.
TEST_F(VmMigrate, LogShippingSourceRunsOnWhenTheDestinationDies) {
  start_relived();
  start_vm("", /*record=*/true);
  Background migration(migrate_argv("log-shipping", {"--max-rounds", "1000"}), dir_ / "migrate.out",
                       dir_ / "migrate.err");
  ASSERT_TRUE(eventually(
      [&] { return read_all(dir_ / "migrate.err").find("vm: round 1 ") != std::string::npos; },
      seconds(120)))
      << read_all(dir_ / "migrate.err") << read_all(dir_ / "relived.err");
  std::string err;
  ASSERT_NO_FATAL_FAILURE(kill_destination_and_expect_the_source_runs_on(&migration, &err));
}

}  // namespace
}  // namespace relive::testing
