#include "security/replay_guard.h"

#include <gtest/gtest.h>

#include <set>

#include "security/test_keys.h"

namespace relive::security {
namespace {

using testing::contains;

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kNow = 1'790'000'000 * kSec;

protocol::Nonce nonce(uint8_t b) {
  protocol::Nonce n;
  n.bytes.fill(b);
  return n;
}

TEST(ReplayGuard, AcceptsFreshRequestOnce) {
  ReplayGuard guard;
  EXPECT_TRUE(guard.check(nonce(1), kNow, kNow).ok());
  Status again = guard.check(nonce(1), kNow + kSec, kNow + kSec);
  EXPECT_EQ(again.code(), Status::Code::kAborted);
  EXPECT_TRUE(contains(again, "replayed nonce 01010101")) << again.to_string();
  EXPECT_TRUE(guard.check(nonce(2), kNow, kNow).ok());
}

TEST(ReplayGuard, RefusesStaleAndFutureTimestamps) {
  ReplayGuard guard(std::chrono::seconds(60));
  Status stale = guard.check(nonce(1), kNow - 61 * kSec, kNow);
  EXPECT_TRUE(contains(stale, "61.0 s behind")) << stale.to_string();
  Status future = guard.check(nonce(2), kNow + 90 * kSec, kNow);
  EXPECT_TRUE(contains(future, "90.0 s ahead of")) << future.to_string();
  EXPECT_TRUE(guard.check(nonce(3), kNow - 59 * kSec, kNow).ok());
  EXPECT_TRUE(guard.check(nonce(4), kNow + 59 * kSec, kNow).ok());
  EXPECT_EQ(guard.remembered(), 2u);
}

TEST(ReplayGuard, SurvivesExtremeTimestamps) {
  ReplayGuard guard;
  EXPECT_FALSE(guard.check(nonce(1), INT64_MIN, kNow).ok());
  EXPECT_FALSE(guard.check(nonce(2), INT64_MAX, kNow).ok());
}

TEST(ReplayGuard, ForgetsNoncesOnceTheyAreStaleAnyway) {
  ReplayGuard guard(std::chrono::seconds(10));
  for (uint8_t i = 0; i < 100; ++i) ASSERT_TRUE(guard.check(nonce(i), kNow, kNow).ok());
  EXPECT_EQ(guard.remembered(), 100u);
  // Eleven seconds on, all of them are outside the window: replaying one is refused as
  // stale even though the guard no longer remembers it.
  EXPECT_TRUE(guard.check(nonce(200), kNow + 11 * kSec, kNow + 11 * kSec).ok());
  EXPECT_EQ(guard.remembered(), 1u);
  Status replay = guard.check(nonce(5), kNow, kNow + 11 * kSec);
  EXPECT_TRUE(contains(replay, "behind")) << replay.to_string();
}

TEST(ReplayGuard, ClockStepBackDoesNotReviveForgottenNonces) {
  ReplayGuard guard(std::chrono::seconds(10));
  ASSERT_TRUE(guard.check(nonce(1), kNow, kNow).ok());
  ASSERT_TRUE(guard.check(nonce(2), kNow + 20 * kSec, kNow + 20 * kSec).ok());  // evicts 1
  // The receiver's clock steps back 15 s; nonce 1's timestamp would look fresh again.
  Status s = guard.check(nonce(1), kNow, kNow + 5 * kSec);
  EXPECT_FALSE(s.ok()) << "a replay got through after a clock step";
}

TEST(ReplayGuard, FailsClosedWhenFull) {
  ReplayGuard guard(std::chrono::seconds(60), 3);
  for (uint8_t i = 0; i < 3; ++i) ASSERT_TRUE(guard.check(nonce(i), kNow, kNow).ok());
  Status full = guard.check(nonce(9), kNow, kNow);
  EXPECT_TRUE(contains(full, "more than the replay guard can track")) << full.to_string();
  EXPECT_TRUE(guard.check(nonce(9), kNow + 61 * kSec, kNow + 61 * kSec).ok());  // room again
}

TEST(ReplayGuard, RandomNoncesDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(protocol::nonce_hex(random_nonce()));
  EXPECT_EQ(seen.size(), 1000u);
  int64_t now = unix_now_ns();
  EXPECT_GT(now, 1'600'000'000 * kSec);
}

}  // namespace
}  // namespace relive::security
