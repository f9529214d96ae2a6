// QmpClient against a real QEMU (stopped with -S, no guest) and, for the malformed-input cases,
// against a fake monitor on a unix socket.
#include "drivers/qemu/qmp_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "drivers/qemu/qemu_process.h"
#include "test_util.h"

namespace relive::qemu {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A QEMU with no guest, stopped before it starts, with its monitor on dir/qmp.sock.
class QemuUnderTest {
 public:
  QemuUnderTest() {
    QemuLaunch l;
    l.argv = {"qemu-system-x86_64",
              "-accel",
              "tcg",
              "-S",
              "-nodefaults",
              "-display",
              "none",
              "-m",
              "64",
              "-qmp",
              "unix:" + socket() + ",server=on,wait=off"};
    l.log_file = dir_ / "qemu.log";
    Result<QemuProcess> p = QemuProcess::start(l);
    if (p.ok()) process_.emplace(std::move(*p));
  }
  std::string socket() const { return dir_ / "qmp.sock"; }
  QemuProcess& process() { return *process_; }
  std::string log() const { return testing::read_all(dir_ / "qemu.log"); }

 private:
  testing::TempDir dir_;
  std::optional<QemuProcess> process_;
};

TEST(QmpClient, NegotiatesAndNamesTheQemuAtTheOtherEnd) {
  QemuUnderTest q;
  Result<QmpClient> c = QmpClient::connect(q.socket(), seconds(30));
  ASSERT_TRUE(c.ok()) << c.status().to_string() << q.log();
  EXPECT_TRUE(c->version().starts_with("10.")) << c->version();
  EXPECT_EQ(c->peer_pid(), q.process().pid());
}

TEST(QmpClient, ExecuteReturnsTheReturnMember) {
  QemuUnderTest q;
  Result<QmpClient> c = QmpClient::connect(q.socket(), seconds(30));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  Result<nlohmann::json> st = c->execute("query-status");
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ((*st)["status"], "prelaunch");
  EXPECT_EQ((*st)["running"], false);
  Result<nlohmann::json> caps = c->execute("query-migrate-capabilities");
  ASSERT_TRUE(caps.ok()) << caps.status().to_string();
  EXPECT_TRUE(caps->is_array());
}

TEST(QmpClient, UnknownCommandCarriesQemusErrorText) {
  QemuUnderTest q;
  Result<QmpClient> c = QmpClient::connect(q.socket(), seconds(30));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  Result<nlohmann::json> r = c->execute("no-such-command");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("CommandNotFound"), std::string::npos)
      << r.status().to_string();
  EXPECT_NE(r.status().message().find("no-such-command"), std::string::npos);
  // The connection is still usable.
  EXPECT_TRUE(c->execute("query-status").ok());
}

TEST(QmpClient, BadArgumentsCarryQemusErrorText) {
  QemuUnderTest q;
  Result<QmpClient> c = QmpClient::connect(q.socket(), seconds(30));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  Result<nlohmann::json> r =
      c->execute("migrate-set-parameters", {{"downtime-limit", "three hundred"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("downtime-limit"), std::string::npos)
      << r.status().to_string();
}

TEST(QmpClient, CollectsEventsThatArriveAroundCommands) {
  QemuUnderTest q;
  Result<QmpClient> c = QmpClient::connect(q.socket(), seconds(30));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_TRUE(c->execute("cont").ok());
  ASSERT_TRUE(c->execute("stop").ok());
  std::vector<std::string> names;
  for (int i = 0; i < 2; ++i) {
    Result<std::optional<QmpEvent>> e = c->next_event(seconds(30));
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    ASSERT_TRUE(e->has_value());
    names.push_back((*e)->name);
    EXPECT_GT((*e)->timestamp, 0);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"RESUME", "STOP"}));
  Result<std::optional<QmpEvent>> none = c->next_event(milliseconds(50));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(QmpClient, ConnectGivesUpWhenNoMonitorAppears) {
  testing::TempDir dir;
  Result<QmpClient> c = QmpClient::connect(dir / "absent.sock", milliseconds(100));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("absent.sock"), std::string::npos);
}

TEST(QmpClient, ReportsQemuGoingAway) {
  QemuUnderTest q;
  Result<QmpClient> c = QmpClient::connect(q.socket(), seconds(30));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  q.process().kill();
  Result<nlohmann::json> r = c->execute("query-status");
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(c->next_event(milliseconds(10)).ok());
}

// A fake monitor that accepts one connection and writes `script` to it (then keeps it open
// until the test ends), to feed the client input QEMU would never send.
class FakeMonitor {
 public:
  explicit FakeMonitor(std::string script) : script_(std::move(script)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path().c_str());
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 1);
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      size_t off = 0;
      while (off < script_.size()) {
        ssize_t n = ::send(c, script_.data() + off, script_.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      char buf[256];
      while (::read(c, buf, sizeof(buf)) > 0) {
      }
      ::close(c);
    });
  }
  ~FakeMonitor() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string path() const { return dir_ / "fake.sock"; }

 private:
  testing::TempDir dir_;
  std::string script_;
  int fd_ = -1;
  std::thread thread_;
};

Status connect_to(const std::string& script) {
  FakeMonitor m(script);
  Result<QmpClient> c = QmpClient::connect(m.path(), milliseconds(500));
  // Ends the fake's read loop before it is joined.
  return c.status();
}

TEST(QmpClient, RejectsAGreetingThatIsNotJson) {
  Status s = connect_to("this is not QMP\r\n");
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
}

TEST(QmpClient, RejectsAGreetingWithoutTheQmpMember) {
  Status s = connect_to("{\"hello\": 1}\r\n");
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
}

TEST(QmpClient, RejectsAnOverlongLine) {
  Status s = connect_to(std::string(QmpClient::kMaxLine + 70000, 'x'));
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
}

TEST(QmpClient, TimesOutOnASilentMonitor) {
  Status s = connect_to("");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("greeting"), std::string::npos) << s.to_string();
}

TEST(QmpClient, RejectsAGreetingCutShort) {
  Status s = connect_to("{\"QMP\": {\"version\"");
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace relive::qemu
