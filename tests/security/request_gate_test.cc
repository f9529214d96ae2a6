#include "security/request_gate.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "security/test_keys.h"
#include "test_util.h"

namespace relive::security {
namespace {

using relive::testing::TempDir;
using testing::contains;

constexpr int64_t kNow = 1'790'000'000'000'000'000;

std::vector<nlohmann::json> audit_lines(const std::string& path) {
  std::istringstream in(relive::testing::read_all(path));
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

PeerIdentity beta() { return {"127.0.0.1:4242", "O = relive, CN = beta", "beta", true}; }

protocol::Message request(int64_t timestamp_ns) {
  protocol::Nonce n;
  n.bytes.fill(0xab);
  return {3, protocol::Request{"migrate.start", n, timestamp_ns, ""}};
}

class RequestGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<AuditLog> log = AuditLog::open(dir_ / "audit.jsonl");
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    log_.emplace(std::move(log).value());
    gate_.emplace(&guard_, &*log_);
  }
  std::string path() const { return dir_ / "audit.jsonl"; }

  TempDir dir_;
  ReplayGuard guard_;
  std::optional<AuditLog> log_;
  std::optional<RequestGate> gate_;
};

TEST_F(RequestGateTest, AuditsAcceptedAndReplayedRequest) {
  ASSERT_TRUE(gate_->admit(beta(), request(kNow), kNow).ok());
  Status replay = gate_->admit(beta(), request(kNow), kNow + 1);
  EXPECT_TRUE(contains(replay, "replayed nonce abab")) << replay.to_string();

  std::vector<nlohmann::json> lines = audit_lines(path());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["decision"], "accepted");
  EXPECT_EQ(lines[0]["peer_subject"], "O = relive, CN = beta");
  EXPECT_EQ(lines[0]["peer_address"], "127.0.0.1:4242");
  EXPECT_EQ(lines[0]["kind"], "request");
  EXPECT_EQ(lines[0]["command"], "migrate.start");
  EXPECT_EQ(lines[0]["nonce"], "abababababababababababababababab");
  EXPECT_EQ(lines[0]["time_ns"], kNow);
  EXPECT_EQ(lines[0]["time"], "2026-09-21T14:13:20.000000000Z");
  EXPECT_EQ(lines[1]["decision"], "refused");
  EXPECT_TRUE(lines[1]["reason"].get<std::string>().find("replayed") != std::string::npos);

  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Several connections at once (relived's workers, an HA node's peers), all offering the same 50
// requests: each is accepted exactly once, every decision is one whole line of the log.
TEST_F(RequestGateTest, ConcurrentRequestsAreEachAdmittedOnceAndAuditedWhole) {
  constexpr int kThreads = 8, kRequests = 50;
  auto nth = [](int i) {
    protocol::Nonce n;
    n.bytes.fill(0);
    n.bytes[0] = static_cast<uint8_t>(i);
    return protocol::Message{3, protocol::Request{"migrate.start", n, kNow, ""}};
  };
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRequests; ++i)
        if (gate_->admit(beta(), nth(i), kNow).ok()) ++accepted;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(accepted, kRequests);
  std::vector<nlohmann::json> lines = audit_lines(path());  // throws on a torn line
  ASSERT_EQ(lines.size(), size_t{kThreads * kRequests});
  std::map<std::string, int> accepted_by_nonce;
  for (const nlohmann::json& l : lines)
    if (l["decision"] == "accepted") ++accepted_by_nonce[l["nonce"].get<std::string>()];
  EXPECT_EQ(accepted_by_nonce.size(), size_t{kRequests});
  for (const auto& [nonce, n] : accepted_by_nonce) EXPECT_EQ(n, 1) << nonce;
}

TEST_F(RequestGateTest, AuditsStaleRequestAndRepliesAsRequests) {
  Status stale = gate_->admit(beta(), request(kNow - 3600'000'000'000), kNow);
  EXPECT_TRUE(contains(stale, "outside the ±60 s window")) << stale.to_string();
  Status ack = gate_->admit(beta(), {4, protocol::Ack{3, ""}}, kNow);
  EXPECT_TRUE(contains(ack, "is a reply, not a request")) << ack.to_string();
  std::vector<nlohmann::json> lines = audit_lines(path());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["decision"], "refused");
  EXPECT_EQ(lines[1]["kind"], "ack");
}

TEST_F(RequestGateTest, AppendsToExistingLogAndEscapesHostileStrings) {
  protocol::Message m = request(kNow);
  std::get<protocol::Request>(m.body).command = "x\"\n\xff{";
  ASSERT_TRUE(gate_->admit(beta(), m, kNow).ok());
  Result<AuditLog> reopened = AuditLog::open(path());
  ASSERT_TRUE(reopened.ok());
  AuditRecord r;
  r.reason = "second writer";
  ASSERT_TRUE(reopened->append(r).ok());
  std::vector<nlohmann::json> lines = audit_lines(path());
  ASSERT_EQ(lines.size(), 2u);  // the newline in the command did not split the line
  EXPECT_EQ(lines[1]["reason"], "second writer");
}

TEST(AuditLog, OpenReportsUnwritablePath) {
  Result<AuditLog> log = AuditLog::open("/nonexistent/dir/audit.jsonl");
  EXPECT_TRUE(contains(log.status(), "open audit log")) << log.status().to_string();
}

}  // namespace
}  // namespace relive::security
