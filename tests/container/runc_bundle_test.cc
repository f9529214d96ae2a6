#include "container/runc_bundle.h"

#include <gtest/gtest.h>

namespace relive::container {
namespace {

TEST(RuncBundle, ParsesRuncCreationTimes) {
  auto ns = rfc3339_to_ns("2026-11-22T22:11:18.587116001Z");
  ASSERT_TRUE(ns.ok()) << ns.status().to_string();
  EXPECT_EQ(*ns, 1795385478587116001LL);
  EXPECT_EQ(*rfc3339_to_ns("2026-11-22T22:11:18Z"), 1795385478000000000LL);
  EXPECT_EQ(*rfc3339_to_ns("2026-11-22T22:11:18.5Z"), 1795385478500000000LL);
  EXPECT_FALSE(rfc3339_to_ns("2026-11-22T22:11:18+01:00").ok());
  EXPECT_FALSE(rfc3339_to_ns("yesterday").ok());
  EXPECT_FALSE(rfc3339_to_ns("2026-11-22T22:11:18.5xZ").ok());
}

// Files written in the first milliseconds after runc's (fine-grained) creation time carry the
// kernel's coarse timestamp, up to a tick older: the cut-off lies before the creation.
TEST(RuncBundle, CutoffLiesBeforeTheCreationByAMargin) {
  EXPECT_EQ(*changed_since_cutoff("2026-11-22T22:11:18.587116001Z", false),
            "@1795385478.487116001");
  EXPECT_EQ(*changed_since_cutoff("2026-11-22T22:11:18.050000000Z", false),
            "@1795385477.950000000");
  // Whole-second file systems: two seconds.
  EXPECT_EQ(*changed_since_cutoff("2026-11-22T22:11:18.587116001Z", true), "@1795385476.587116001");
}

}  // namespace
}  // namespace relive::container
