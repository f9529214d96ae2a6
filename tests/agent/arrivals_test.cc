// Arrivals: the admission policy of relived's migration server.
#include "agent/arrivals.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace relive::agent {
namespace {

TEST(Arrivals, RefusesBeyondMaxConcurrentWithTheCounts) {
  Arrivals a(2, 0);
  auto one = a.admit("one");
  auto two = a.admit("two");
  ASSERT_TRUE(one.ok() && two.ok());
  auto three = a.admit("three");
  ASSERT_FALSE(three.ok());
  EXPECT_EQ(three.status().message(),
            "destination busy: 2 migrations in progress (max_concurrent 2)");
  EXPECT_EQ(a.in_progress(), 2);
}

TEST(Arrivals, ReleasedClaimFreesItsSlotAndName) {
  Arrivals a(1, 0);
  {
    auto one = a.admit("one");
    ASSERT_TRUE(one.ok());
    EXPECT_FALSE(a.admit("two").ok());
  }
  EXPECT_EQ(a.in_progress(), 0);
  EXPECT_TRUE(a.admit("one").ok());
}

TEST(Arrivals, RefusesAWorkloadAlreadyArriving) {
  Arrivals a(4, 0);
  auto first = a.admit("web");
  ASSERT_TRUE(first.ok());
  auto again = a.admit("web");
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("workload 'web' is already arriving here"),
            std::string::npos)
      << again.status().message();
  EXPECT_EQ(a.in_progress(), 1);
}

TEST(Arrivals, UnnamedWorkloadsAreCountedButNeverDuplicates) {
  Arrivals a(2, 0);
  auto x = a.admit("");
  auto y = a.admit("");
  EXPECT_TRUE(x.ok() && y.ok());
  EXPECT_FALSE(a.admit("").ok());  // the slots, not the name
}

TEST(Arrivals, TotalLimitExhausts) {
  Arrivals a(4, 2);
  { auto one = a.admit("one"); }
  EXPECT_FALSE(a.exhausted());
  { auto two = a.admit("two"); }
  EXPECT_TRUE(a.exhausted());
  auto three = a.admit("three");
  ASSERT_FALSE(three.ok());
  EXPECT_NE(three.status().message().find("not accepting more migrations"), std::string::npos);
  EXPECT_EQ(a.admitted(), 2);
}

TEST(Arrivals, ConcurrentAdmissionsNeverExceedTheLimit) {
  Arrivals a(3, 0);
  std::atomic<int> held{0}, peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        auto c = a.admit("w" + std::to_string(t));
        if (!c.ok()) continue;
        int now = ++held;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        --held;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), 3);
  EXPECT_EQ(a.in_progress(), 0);
}

}  // namespace
}  // namespace relive::agent
