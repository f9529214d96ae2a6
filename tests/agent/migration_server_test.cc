// The migration server over real TCP and TLS on the loopback, driven by hand-written sources
// (transfer::Link) and by peers that stall: several migrations at once, the limit refused with a
// clear error, a duplicate workload refused, and stalled peers that hold nobody up.
#include "agent/migration_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "common/scoped_fd.h"
#include "security/audit_log.h"
#include "security/replay_guard.h"
#include "security/request_gate.h"
#include "security/test_keys.h"
#include "test_util.h"
#include "transfer/link.h"

namespace relive::agent {
namespace {

namespace m = relive::migration;
using std::chrono::seconds;

using relive::testing::eventually;

class MigrationServerTest : public ::testing::Test {
 protected:
  void TearDown() override { stop(); }

  // Starts a server on 127.0.0.1 (ephemeral port) whose peers may stay silent `io_timeout`.
  void start(int max_concurrent, std::chrono::milliseconds io_timeout, int once = 0,
             std::chrono::milliseconds drain_timeout = seconds(120)) {
    Result<security::AuditLog> log = security::AuditLog::open(dir_ / "audit.jsonl");
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    audit_.emplace(std::move(*log));
    gate_.emplace(&guard_, &*audit_);
    security::ChannelOptions co = keys_.options("beta");
    co.timeout = io_timeout;
    Result<security::Listener> l = security::Listener::create("127.0.0.1", 0, co);
    ASSERT_TRUE(l.ok()) << l.status().to_string();
    listener_.emplace(std::move(*l));
    MigrationServerOptions o;
    o.max_concurrent = max_concurrent;
    o.once = once;
    o.drain_timeout = drain_timeout;
    o.destination.node_name = "beta";
    o.destination.work_root = dir_ / "work";
    std::filesystem::create_directories(o.destination.work_root);
    server_ = std::make_unique<MigrationServer>(&*listener_, &*gate_, std::move(o), out_,
                                                [this](const std::string& line) {
                                                  std::lock_guard<std::mutex> lock(said_mu_);
                                                  said_.push_back(line);
                                                });
    run_ = std::async(std::launch::async, [this] { return server_->run(stop_); });
  }

  void stop() {
    stop_ = true;
    if (run_.valid()) {
      ASSERT_EQ(run_.wait_for(seconds(60)), std::future_status::ready) << "run() did not return";
      EXPECT_TRUE(run_.get().ok());
    }
    server_.reset();
  }

  bool said(const std::string& part) {
    std::lock_guard<std::mutex> lock(said_mu_);
    for (const auto& l : said_)
      if (l.find(part) != std::string::npos) return true;
    return false;
  }

  // A source that has said hello.
  std::unique_ptr<transfer::Link> source() {
    security::ChannelOptions co = keys_.options("alpha", "beta");
    co.timeout = std::chrono::seconds(20);
    auto ch = security::connect_channel("127.0.0.1", listener_->port(), co);
    EXPECT_TRUE(ch.ok()) << ch.status().to_string();
    if (!ch.ok()) return nullptr;
    auto link = std::make_unique<transfer::Link>(std::move(*ch));
    Status s = link->hello("alpha");
    EXPECT_TRUE(s.ok()) << s.to_string();
    return s.ok() ? std::move(link) : nullptr;
  }

  static Result<std::string> begin(transfer::Link* link, const std::string& name) {
    m::Begin b;
    b.name = name;
    b.source_node = "alpha";
    return link->call(b);  // finds CRIU (scripts/bootstrap.sh installs it)
  }

  // A raw TCP connection to the server that has sent `bytes` and nothing else, from `from` (a
  // loopback address other than 127.0.0.1) when given.
  ScopedFd stalled_peer(const std::string& bytes, const char* from = nullptr) {
    ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (from != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      EXPECT_EQ(::inet_pton(AF_INET, from, &local.sin_addr), 1);
      EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local), 0);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(listener_->port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    if (!bytes.empty()) {
      EXPECT_EQ(::send(fd.get(), bytes.data(), bytes.size(), 0), ssize_t(bytes.size()));
    }
    return fd;
  }

  // The server closed `fd` (end of file) within `limit`.
  static bool closed_by_server(int fd, std::chrono::milliseconds limit) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return false;
    char c;
    return ::recv(fd, &c, 1, 0) <= 0;
  }

  relive::testing::TempDir dir_;
  security::testing::KeyDirs keys_;
  security::ReplayGuard guard_;
  std::optional<security::AuditLog> audit_;
  std::optional<security::RequestGate> gate_;
  std::optional<security::Listener> listener_;
  std::FILE* out_ = ::tmpfile();
  std::unique_ptr<MigrationServer> server_;
  std::atomic<bool> stop_{false};
  std::future<Status> run_;
  std::mutex said_mu_;
  std::vector<std::string> said_;
};

// Half a TLS record: a handshake header announcing 200 bytes, then 20 of them.
std::string half_tls_record() {
  std::string r = {0x16, 0x03, 0x01, 0x00, static_cast<char>(200)};
  return r + std::string(20, 'x');
}

// Two peers that stall in their handshake do not hold up a third: its handshake and begin are
// served at once, although each staller may keep its worker for a whole minute. (Handshakes on
// the accept loop would leave the source's 20 s timeout to run out.)
TEST_F(MigrationServerTest, StalledPeersDoNotDelayAMigration) {
  start(4, seconds(60));
  ScopedFd silent = stalled_peer("");
  ScopedFd half = stalled_peer(half_tls_record());
  auto a = source();
  ASSERT_TRUE(a);
  Result<std::string> r = begin(a.get(), "good");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_FALSE(a->call(m::Abort{"test over"}).ok());  // the session ends, refusing nothing else
  EXPECT_FALSE(closed_by_server(silent.get(), std::chrono::milliseconds(0)));
  silent.reset();
  half.reset();
}

// One address that opens connection after connection and never authenticates holds at most
// max_concurrent + 4 workers: the server-wide cap on waiting connections is not reached, and a
// source elsewhere is served at once.
TEST_F(MigrationServerTest, AFloodFromOneAddressDoesNotLockOutOthers) {
  start(1, seconds(60));  // max_pending 20, per address 5
  std::vector<ScopedFd> flood;
  for (int i = 0; i < 25; ++i) flood.push_back(stalled_peer("", "127.0.0.2"));
  EXPECT_TRUE(eventually([&] { return said("connections from that address are already waiting"); },
                         seconds(30)));
  for (size_t i = 5; i < flood.size(); ++i)
    EXPECT_TRUE(closed_by_server(flood[i].get(), seconds(30))) << "connection " << i;
  for (size_t i = 0; i < 5; ++i)  // accepted in order: the first five wait for their handshake
    EXPECT_FALSE(closed_by_server(flood[i].get(), std::chrono::milliseconds(0))) << i;
  auto a = source();  // from 127.0.0.1
  ASSERT_TRUE(a);
  Result<std::string> r = begin(a.get(), "elsewhere");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
}

// A stalled peer costs its worker only for the I/O timeout: then it is dropped, reported, and
// the server goes on serving.
TEST_F(MigrationServerTest, StalledPeersAreDroppedAfterTheIoTimeout) {
  start(4, seconds(2));
  ScopedFd silent = stalled_peer("");
  ScopedFd half = stalled_peer(half_tls_record());
  EXPECT_TRUE(closed_by_server(silent.get(), std::chrono::seconds(60)));
  EXPECT_TRUE(closed_by_server(half.get(), std::chrono::seconds(60)));
  EXPECT_TRUE(
      eventually([&] { return said("refused a connection from"); }, std::chrono::seconds(30)));
  auto a = source();
  ASSERT_TRUE(a);
  EXPECT_TRUE(begin(a.get(), "after").ok());
}

// Stopped while migrations run, the server gives them drain_timeout, then cuts their links: each
// ends as a cut migration does (its work dir removed, the source told by a broken link), and
// run() returns although the peers would have been waited for for ten minutes.
TEST_F(MigrationServerTest, AStopCutsTheMigrationsStillRunningAfterTheDrainTimeout) {
  start(4, seconds(600), 0, seconds(1));
  auto a = source();
  ASSERT_TRUE(a);
  auto b = source();
  ASSERT_TRUE(b);
  ASSERT_TRUE(begin(a.get(), "slow-a").ok());
  ASSERT_TRUE(begin(b.get(), "slow-b").ok());
  EXPECT_EQ(server_->in_progress(), 2);
  stop_ = true;
  ASSERT_EQ(run_.wait_for(seconds(60)), std::future_status::ready)
      << "run() still waits for the migrations";
  EXPECT_TRUE(run_.get().ok());
  EXPECT_TRUE(said("stopping: waiting up to 1 s for 2 connection(s) to end"));
  EXPECT_TRUE(said("stopping: cutting the link of 2 connection(s)"));
  EXPECT_FALSE(a->call(m::Abort{"too late"}).ok());
  EXPECT_FALSE(b->call(m::Abort{"too late"}).ok());
  int dirs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "work")) dirs += e.is_directory();
  EXPECT_EQ(dirs, 0) << "a cut migration's work dir is left";
}

TEST_F(MigrationServerTest, ServesSeveralMigrationsAtOnce) {
  start(4, seconds(60));
  std::vector<std::unique_ptr<transfer::Link>> links;
  for (int i = 0; i < 4; ++i) {
    links.push_back(source());
    ASSERT_TRUE(links.back());
    Result<std::string> r = begin(links.back().get(), "w" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  EXPECT_EQ(server_->in_progress(), 4);
  // Four work dirs, one each.
  int dirs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "work")) dirs += e.is_directory();
  EXPECT_EQ(dirs, 4);
}

TEST_F(MigrationServerTest, RefusesBeyondMaxConcurrentThenServesTheNext) {
  start(1, seconds(60));
  auto a = source();
  ASSERT_TRUE(a);
  ASSERT_TRUE(begin(a.get(), "first").ok());
  auto b = source();
  ASSERT_TRUE(b);
  Result<std::string> refused = begin(b.get(), "second");
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(b->peer_refused());
  EXPECT_EQ(refused.status().message(),
            "destination: destination busy: 1 migrations in progress (max_concurrent 1)");
  EXPECT_FALSE(a->call(m::Abort{"done"}).ok());
  ASSERT_TRUE(eventually([&] { return server_->in_progress() == 0; }, std::chrono::seconds(30)));
  auto c = source();
  ASSERT_TRUE(c);
  EXPECT_TRUE(begin(c.get(), "third").ok());
  // The refusal is in the audit log.
  EXPECT_NE(relive::testing::read_all(dir_ / "audit.jsonl").find("destination busy"),
            std::string::npos);
}

TEST_F(MigrationServerTest, RefusesAWorkloadAlreadyArriving) {
  start(4, seconds(60));
  auto a = source();
  ASSERT_TRUE(a);
  ASSERT_TRUE(begin(a.get(), "web").ok());
  auto b = source();
  ASSERT_TRUE(b);
  Result<std::string> refused = begin(b.get(), "web");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("workload 'web' is already arriving here"),
            std::string::npos)
      << refused.status().message();
  EXPECT_EQ(server_->in_progress(), 1);
}

TEST_F(MigrationServerTest, OnceReturnsAfterThatManyMigrations) {
  start(4, seconds(60), /*once=*/1);
  auto a = source();
  ASSERT_TRUE(a);
  ASSERT_TRUE(begin(a.get(), "only").ok());
  EXPECT_FALSE(a->call(m::Abort{"done"}).ok());
  EXPECT_EQ(run_.wait_for(seconds(60)), std::future_status::ready);
  EXPECT_FALSE(said("cutting")) << "a migration that ended within the drain timeout was cut";
}

// A stop lets the running migration finish its exchange and then run() returns.
TEST_F(MigrationServerTest, StopWaitsForTheRunningMigration) {
  start(4, seconds(60));
  auto a = source();
  ASSERT_TRUE(a);
  ASSERT_TRUE(begin(a.get(), "running").ok());
  stop_ = true;
  EXPECT_EQ(run_.wait_for(std::chrono::milliseconds(500)), std::future_status::timeout)
      << "run() returned while a migration was still running";
  EXPECT_FALSE(a->call(m::Abort{"done"}).ok());
  EXPECT_EQ(run_.wait_for(seconds(60)), std::future_status::ready);
  EXPECT_FALSE(said("cutting")) << "a migration that ended within the drain timeout was cut";
}

}  // namespace
}  // namespace relive::agent
