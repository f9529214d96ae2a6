#include "ha/ha_metrics.h"

#include <gtest/gtest.h>

namespace relive::ha {
namespace {

bool has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(HaMetrics, PrimaryStateAndEpochs) {
  metrics::Registry r;
  HaSnapshot s;
  s.role = "primary";
  s.committed_epoch = 42;
  s.is_protected = true;
  s.lag_s = 0.05;
  s.lease_held = true;
  s.lease_remaining_s = 1.5;
  s.has_output = true;
  s.output_held = 7;
  s.output_released = 100;
  {
    HaMetrics m(&r);
    m.watch([&] { return s; });
    m.epoch_committed(12, 40, 5000);
    m.epoch_committed(8, 30, 1000, 4096);
    m.took_over();
    std::string t = r.render();
    EXPECT_TRUE(has(t, "relive_ha_role{role=\"primary\"} 1")) << t;
    EXPECT_TRUE(has(t, "relive_ha_role{role=\"backup\"} 0")) << t;
    EXPECT_TRUE(has(t, "relive_ha_epochs_total{side=\"primary\"} 2")) << t;
    EXPECT_TRUE(has(t, "relive_ha_epoch_bytes_shipped_total 6000")) << t;
    EXPECT_TRUE(has(t, "relive_ha_epoch_disk_bytes_total 4096")) << t;
    EXPECT_TRUE(has(t, "relive_ha_epoch_frozen_seconds_sum 0.02")) << t;
    EXPECT_TRUE(has(t, "relive_ha_epoch_frozen_seconds_count 2")) << t;
    EXPECT_TRUE(has(t, "relive_ha_epoch_duration_seconds_sum 0.07")) << t;
    EXPECT_TRUE(has(t, "relive_ha_committed_epoch 42")) << t;
    EXPECT_TRUE(has(t, "relive_ha_protected 1")) << t;
    EXPECT_TRUE(has(t, "relive_ha_backup_lag_seconds 0.05")) << t;
    EXPECT_TRUE(has(t, "relive_ha_lease_held 1")) << t;
    EXPECT_TRUE(has(t, "relive_ha_lease_remaining_seconds 1.5")) << t;
    EXPECT_TRUE(has(t, "relive_ha_output_held_packets 7")) << t;
    EXPECT_TRUE(has(t, "relive_ha_output_released_packets 100")) << t;
    EXPECT_TRUE(has(t, "relive_ha_takeovers_total 1")) << t;
  }
  // The node is gone: its state families are too (the event counters stay).
  std::string t = r.render();
  EXPECT_EQ(t.find("relive_ha_role"), std::string::npos) << t;
  EXPECT_TRUE(has(t, "relive_ha_takeovers_total 1")) << t;
}

TEST(HaMetrics, BackupShowsNoPrimaryOnlyValues) {
  metrics::Registry r;
  HaMetrics m(&r);
  m.watch([] {
    HaSnapshot s;
    s.role = "backup";
    s.committed_epoch = 3;
    return s;
  });
  m.epoch_applied();
  std::string t = r.render();
  EXPECT_TRUE(has(t, "relive_ha_role{role=\"backup\"} 1")) << t;
  EXPECT_TRUE(has(t, "relive_ha_epochs_total{side=\"backup\"} 1")) << t;
  EXPECT_TRUE(has(t, "relive_ha_lease_held 0")) << t;
  EXPECT_EQ(t.find("\nrelive_ha_backup_lag_seconds "), std::string::npos) << t;
  EXPECT_EQ(t.find("\nrelive_ha_lease_remaining_seconds "), std::string::npos) << t;
  EXPECT_EQ(t.find("\nrelive_ha_output_held_packets "), std::string::npos) << t;
}

}  // namespace
}  // namespace relive::ha
