#include "ha/etcd_lease.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "ha/etcd_fixture.h"

namespace relive::ha {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class EtcdLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(relive::testing::kEtcdBinary, X_OK) != 0) {
      GTEST_SKIP() << relive::testing::kEtcdBinary << " is absent (Debian package etcd-server)";
    }
    etcd_ = std::make_unique<relive::testing::EtcdServer>();
    ASSERT_TRUE(etcd_->ready()) << etcd_->log();
  }
  EtcdLease client() {
    Result<EtcdLease> c = EtcdLease::create({etcd_->endpoint()});
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return std::move(c).value();
  }
  // Polls acquire until it succeeds or `limit` passes.
  Result<Lease> acquire_within(EtcdLease& c, const std::string& holder,
                               std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    for (;;) {
      Result<Lease> r = c.acquire("/relive/test/primary", holder, 2);
      if (r.ok() || Clock::now() > deadline || r.status().code() != Status::Code::kAborted)
        return r;
      std::this_thread::sleep_for(50ms);
    }
  }
  std::unique_ptr<relive::testing::EtcdServer> etcd_;
};

TEST_F(EtcdLeaseTest, AcquireAndQueryHolder) {
  EtcdLease a = client();
  Result<std::optional<std::string>> h0 = a.holder("/relive/test/primary");
  ASSERT_TRUE(h0.ok()) << h0.status().to_string();
  EXPECT_FALSE(h0->has_value());
  auto asked = Clock::now();
  Result<Lease> l = a.acquire("/relive/test/primary", "alpha", 5);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_NE(l->id, 0);
  EXPECT_EQ(l->ttl_s, 5);
  auto answered = Clock::now();
  // Counted from a moment before the answer (etcd's clock started somewhere in between), never
  // from after it.
  EXPECT_LE(l->valid_until, answered + 5s);
  EXPECT_GT(l->valid_until, asked + 4s);
  Result<std::optional<std::string>> h = a.holder("/relive/test/primary");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->value_or(""), "alpha");
  EXPECT_TRUE(a.keepalive(&*l).ok());
}

TEST_F(EtcdLeaseTest, SecondAcquirerRefused) {
  EtcdLease a = client(), b = client();
  Result<Lease> la = a.acquire("/relive/test/primary", "alpha", 5);
  ASSERT_TRUE(la.ok()) << la.status().to_string();
  Result<Lease> lb = b.acquire("/relive/test/primary", "beta", 5);
  ASSERT_FALSE(lb.ok());
  EXPECT_EQ(lb.status().code(), Status::Code::kAborted);
  EXPECT_EQ(lb.status().message(), "etcd key /relive/test/primary is held by 'alpha'");
  // Even the same holder name cannot take it twice: a lease is one holder's, once.
  EXPECT_FALSE(a.acquire("/relive/test/primary", "alpha", 5).ok());
  EXPECT_EQ(b.holder("/relive/test/primary")->value_or(""), "alpha");
}

TEST_F(EtcdLeaseTest, KeepaliveHoldsPastTtlAndExpiryHandsOver) {
  EtcdLease a = client(), b = client();
  Result<Lease> la = a.acquire("/relive/test/primary", "alpha", 2);
  ASSERT_TRUE(la.ok()) << la.status().to_string();
  // Renewed well inside its TTL for longer than 1.5 TTLs: still alpha's, b is refused
  // throughout. A renewal is due once 0.3 s of the local validity are used up.
  auto start = Clock::now();
  while (Clock::now() - start < 3s) {
    ASSERT_TRUE(a.keepalive(&*la).ok());
    EXPECT_FALSE(b.acquire("/relive/test/primary", "beta", 2).ok());
    while (Clock::now() < la->valid_until - 1700ms) std::this_thread::sleep_for(20ms);
  }
  // alpha stops renewing: etcd expires the lease and beta gets the key.
  auto stopped = Clock::now();
  Result<Lease> lb = acquire_within(b, "beta", 6s);
  ASSERT_TRUE(lb.ok()) << lb.status().to_string();
  auto handover = Clock::now() - stopped;
  std::printf(
      "expiry handover after %lld ms (TTL 2 s); alpha's local valid_until was %lld ms "
      "before that\n",
      (long long)std::chrono::duration_cast<std::chrono::milliseconds>(handover).count(),
      (long long)std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                                       la->valid_until)
          .count());
  // Safety: beta never got it while alpha's local lease was still valid.
  EXPECT_GE(Clock::now(), la->valid_until);
  EXPECT_EQ(b.holder("/relive/test/primary")->value_or(""), "beta");
  Status s = a.keepalive(&*la);
  EXPECT_EQ(s.code(), Status::Code::kAborted) << s.to_string();
  EXPECT_NE(s.message().find("expired"), std::string::npos) << s.message();
}

// The fence: a holder that rewrites its key keeps it; one that stops is taken over once its key
// stood still for the fence interval, long before etcd would expire its lease, and never while
// its own validity runs.
TEST_F(EtcdLeaseTest, AKeyThatStoodStillForTheFenceIsTakenOverAndOnlyThen) {
  EtcdLease a = client(), b = client();
  const auto fence = 300ms;
  Result<Lease> la = a.acquire("/relive/test/primary", "alpha", 30, fence);
  ASSERT_TRUE(la.ok()) << la.status().to_string();
  EXPECT_LE(la->valid_until, Clock::now() + fence) << "bounded by the fence, not the 30 s TTL";
  Result<KeyState> seen = b.observe("/relive/test/primary");
  ASSERT_TRUE(seen.ok()) << seen.status().to_string();
  EXPECT_EQ(seen->holder.value_or(""), "alpha");
  // A renewal moves the key on: a take-over conditioned on the revision seen before fails, and
  // leaves no lease of b's behind.
  ASSERT_TRUE(a.renew_key(&*la).ok());
  Result<KeyState> moved = b.observe("/relive/test/primary");
  ASSERT_TRUE(moved.ok());
  EXPECT_GT(moved->mod_revision, seen->mod_revision);
  Result<Lease> early = b.take_over("/relive/test/primary", "beta", 30, fence, seen->mod_revision);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), Status::Code::kAborted) << early.status().to_string();
  EXPECT_EQ(b.holder("/relive/test/primary")->value_or(""), "alpha");
  // alpha stops. beta waits the fence (plus the margin relived uses) from its sighting.
  auto sighted = Clock::now();
  while (Clock::now() < sighted + fence + fence / 10 + 20ms) std::this_thread::sleep_for(10ms);
  auto taking = Clock::now();
  Result<Lease> lb = b.take_over("/relive/test/primary", "beta", 30, fence, moved->mod_revision);
  ASSERT_TRUE(lb.ok()) << lb.status().to_string();
  EXPECT_EQ(b.holder("/relive/test/primary")->value_or(""), "beta");
  // Safety: alpha's own validity had ended before beta asked.
  EXPECT_LE(la->valid_until, taking);
  // alpha's lease still lives in etcd (30 s), but its key is not on it any more.
  EXPECT_TRUE(a.keepalive(&*la).ok());
  Status s = a.renew_key(&*la);
  EXPECT_EQ(s.code(), Status::Code::kAborted) << s.to_string();
  EXPECT_NE(s.message().find("beta"), std::string::npos) << s.message();
  // Revoking alpha's old lease leaves beta's key alone; beta renews it.
  EXPECT_TRUE(a.release(&*la).ok());
  EXPECT_EQ(b.holder("/relive/test/primary")->value_or(""), "beta");
  EXPECT_TRUE(b.renew_key(&*lb).ok());
  EXPECT_GT(lb->valid_until, Clock::now());
}

TEST_F(EtcdLeaseTest, WithoutAFenceOnlyTheTtlBoundsTheHolder) {
  EtcdLease a = client();
  auto asked = Clock::now();
  Result<Lease> la = a.acquire("/relive/test/primary", "alpha", 5);
  ASSERT_TRUE(la.ok()) << la.status().to_string();
  EXPECT_GT(la->valid_until, asked + 4s);
  EXPECT_EQ(la->valid_until, la->lease_until);
  // A take-over of a revision that never was is refused by etcd's compare, not applied.
  Result<KeyState> k = a.observe("/relive/test/primary");
  ASSERT_TRUE(k.ok());
  EXPECT_FALSE(a.take_over("/relive/test/primary", "beta", 5, 0ms, k->mod_revision + 1000).ok());
  EXPECT_EQ(a.holder("/relive/test/primary")->value_or(""), "alpha");
  Result<KeyState> none = a.observe("/relive/test/nobody");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->holder.has_value());
}

TEST_F(EtcdLeaseTest, ReleaseHandsOverAtOnce) {
  EtcdLease a = client(), b = client();
  Result<Lease> la = a.acquire("/relive/test/primary", "alpha", 30);
  ASSERT_TRUE(la.ok());
  ASSERT_FALSE(b.acquire("/relive/test/primary", "beta", 30).ok());
  ASSERT_TRUE(a.release(&*la).ok());
  EXPECT_FALSE(b.holder("/relive/test/primary")->has_value());
  Result<Lease> lb = b.acquire("/relive/test/primary", "beta", 30);
  ASSERT_TRUE(lb.ok()) << lb.status().to_string();
  EXPECT_EQ(a.keepalive(&*la).code(), Status::Code::kAborted);
  EXPECT_TRUE(a.release(&*la).ok());  // releasing twice is harmless and does not touch beta's
  EXPECT_EQ(b.holder("/relive/test/primary")->value_or(""), "beta");
}

TEST_F(EtcdLeaseTest, RefusedAcquireLeavesNoLeaseBehind) {
  EtcdLease a = client(), b = client();
  Result<Lease> la = a.acquire("/relive/test/primary", "alpha", 30);
  ASSERT_TRUE(la.ok());
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(b.acquire("/relive/test/primary", "beta", 30).ok());
  ASSERT_TRUE(a.release(&*la).ok());
  EXPECT_TRUE(b.acquire("/relive/test/primary", "beta", 30).ok());
}

TEST_F(EtcdLeaseTest, EtcdDownGivesClearError) {
  EtcdLease a = client();
  Result<Lease> la = a.acquire("/relive/test/primary", "alpha", 5);
  ASSERT_TRUE(la.ok());
  std::string ep = etcd_->endpoint();
  etcd_->stop();
  Status s = a.keepalive(&*la);
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_EQ(s.message(),
            "etcd unreachable (/v3/lease/keepalive): " + ep + ": connect: Connection refused");
  Result<Lease> r = a.acquire("/relive/test/primary", "alpha", 5);
  EXPECT_EQ(r.status().code(), Status::Code::kIoError);
  EXPECT_NE(r.status().message().find("connect: Connection refused"), std::string::npos);
  Result<std::optional<std::string>> h = a.holder("/relive/test/primary");
  EXPECT_EQ(h.status().code(), Status::Code::kIoError);
}

TEST_F(EtcdLeaseTest, FallsBackToNextEndpointAndTimesOutOnSilentOne) {
  // A listener that accepts but never answers: the request must end at the timeout.
  int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::listen(silent, 4);
  socklen_t len = sizeof(addr);
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string silent_ep = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  Result<EtcdLease> c = EtcdLease::create({silent_ep, etcd_->endpoint()}, 300ms);
  ASSERT_TRUE(c.ok());
  auto t0 = Clock::now();
  Result<Lease> l = c->acquire("/relive/test/primary", "alpha", 5);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_LT(Clock::now() - t0, 2s);
  Result<EtcdLease> only_silent = EtcdLease::create({silent_ep}, 300ms);
  Result<std::optional<std::string>> h = only_silent->holder("/x");
  EXPECT_EQ(h.status().message(),
            "etcd unreachable (/v3/kv/range): " + silent_ep + ": receive: timed out");
  ::close(silent);
}

TEST(EtcdLeaseCreate, RejectsBadEndpoints) {
  EXPECT_EQ(EtcdLease::create({}).status().message(), "etcd: no endpoints");
  EXPECT_EQ(EtcdLease::create({"https://x:1"}).status().message(),
            "etcd endpoint: 'https://x:1': not http://");
  EXPECT_EQ(EtcdLease::create({"http://x"}).status().message(),
            "etcd endpoint: 'http://x': expected HOST:PORT");
  EXPECT_EQ(EtcdLease::create({"http://x:0"}).status().message(),
            "etcd endpoint: 'http://x:0': port must be between 1 and 65535");
}

}  // namespace
}  // namespace relive::ha
