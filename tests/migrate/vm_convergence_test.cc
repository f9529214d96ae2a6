#include "migrate/vm_convergence.h"

#include <gtest/gtest.h>

namespace relive::migrate {
namespace {

using std::chrono::milliseconds;

VmRamSample sample(int passes, double dirty_mb_s, double link_mb_s) {
  VmRamSample s;
  s.passes = passes;
  s.page_size = 4096;
  s.dirty_pages_rate = dirty_mb_s * 1e6 / 4096;
  s.mbps = link_mb_s * 8;
  s.remaining = 1 << 20;
  return s;
}

TEST(VmConvergence, QuietGuestKeepsPreCopy) {
  VmConvergence c(30, milliseconds(60000));
  for (int pass = 1; pass < 20; ++pass)
    EXPECT_EQ(c.observe(sample(pass, 1, 100), milliseconds(pass * 100)), "");
}

TEST(VmConvergence, GivesUpAfterTheMaximumPasses) {
  VmConvergence c(5, milliseconds(60000));
  EXPECT_EQ(c.observe(sample(4, 1, 100), milliseconds(10)), "");
  EXPECT_NE(c.observe(sample(5, 1, 100), milliseconds(20)).find("5 pre-copy passes"),
            std::string::npos);
}

TEST(VmConvergence, GivesUpAfterTheMaximumTime) {
  VmConvergence c(30, milliseconds(1000));
  EXPECT_EQ(c.observe(sample(1, 1, 100), milliseconds(999)), "");
  EXPECT_NE(c.observe(sample(1, 1, 100), milliseconds(1000)).find("1.0 s"), std::string::npos);
}

TEST(VmConvergence, TwoLosingPassesInARowSwitch) {
  VmConvergence c(30, milliseconds(60000));
  EXPECT_EQ(c.observe(sample(1, 50, 10), milliseconds(10)), "");  // the first pass sends all
  EXPECT_EQ(c.observe(sample(2, 50, 10), milliseconds(20)), "");
  EXPECT_EQ(c.observe(sample(2, 50, 10), milliseconds(30)), "");  // same pass: no new evidence
  std::string why = c.observe(sample(3, 50, 10), milliseconds(40));
  EXPECT_NE(why.find("dirties 50.0 MB/s"), std::string::npos) << why;
  EXPECT_NE(why.find("moves 10.0 MB/s"), std::string::npos) << why;
}

TEST(VmConvergence, AWinningPassResetsTheCount) {
  VmConvergence c(30, milliseconds(60000));
  EXPECT_EQ(c.observe(sample(2, 50, 10), milliseconds(10)), "");
  EXPECT_EQ(c.observe(sample(3, 1, 10), milliseconds(20)), "");
  EXPECT_EQ(c.observe(sample(4, 50, 10), milliseconds(30)), "");
  EXPECT_NE(c.observe(sample(5, 50, 10), milliseconds(40)), "");
}

// Seen in a loaded run: the bulk pass moved 75 MB/s, then the nearly idle stream carried only
// what a quiet guest dirtied (0.8 MB/s); the link was never the limit.
TEST(VmConvergence, AnIdleStreamIsNotASlowLink) {
  VmConvergence c(30, milliseconds(60000));
  EXPECT_EQ(c.observe(sample(1, 0.8, 75), milliseconds(900)), "");
  for (int pass = 2; pass < 10; ++pass)
    EXPECT_EQ(c.observe(sample(pass, 0.8, 0.8), milliseconds(900 + pass * 100)), "") << pass;
}

TEST(VmConvergence, UnknownLinkRateIsNoEvidence) {
  VmConvergence c(30, milliseconds(60000));
  for (int pass = 2; pass < 10; ++pass)
    EXPECT_EQ(c.observe(sample(pass, 50, 0), milliseconds(pass)), "");
}

}  // namespace
}  // namespace relive::migrate
