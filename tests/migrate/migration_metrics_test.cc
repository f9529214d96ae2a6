#include "migrate/migration_metrics.h"

#include <gtest/gtest.h>

namespace relive::migrate {
namespace {

bool has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(MigrationMetrics, SuccessCountsDowntimeDurationAndBytes) {
  metrics::Registry r;
  MigrationMetrics m(&r);
  {
    MigrationMetrics::Record rec = m.record();
    EXPECT_TRUE(has(r.render(), "relive_migrations_in_progress 1"));
    rec.begin("precopy");
    rec.add_bytes(4096);
    rec.add_bytes(100);
    rec.downtime(250);
    rec.succeeded();
  }
  std::string t = r.render();
  EXPECT_TRUE(has(t, "relive_migrations_started_total{strategy=\"precopy\"} 1")) << t;
  EXPECT_TRUE(has(t, "relive_migrations_succeeded_total{strategy=\"precopy\"} 1")) << t;
  EXPECT_EQ(t.find("relive_migrations_failed_total{"), std::string::npos) << t;
  EXPECT_TRUE(has(t, "relive_migration_bytes_received_total{strategy=\"precopy\"} 4196")) << t;
  EXPECT_TRUE(has(t, "relive_migration_downtime_seconds_sum{strategy=\"precopy\"} 0.25")) << t;
  EXPECT_TRUE(has(t, "relive_migration_downtime_seconds_count{strategy=\"precopy\"} 1")) << t;
  EXPECT_TRUE(has(t, "relive_migration_duration_seconds_count{strategy=\"precopy\"} 1")) << t;
  EXPECT_TRUE(has(t, "relive_migrations_in_progress 0")) << t;
}

TEST(MigrationMetrics, ARecordDroppedWithoutSuccessIsAFailure) {
  metrics::Registry r;
  MigrationMetrics m(&r);
  { MigrationMetrics::Record before_begin = m.record(); }
  {
    MigrationMetrics::Record rec = m.record();
    rec.begin("crtr");
    rec.downtime(10);  // a failed migration's downtime is not a migration's downtime
    MigrationMetrics::Record moved = std::move(rec);
  }
  std::string t = r.render();
  EXPECT_TRUE(has(t, "relive_migrations_failed_total{strategy=\"unknown\"} 1")) << t;
  EXPECT_TRUE(has(t, "relive_migrations_failed_total{strategy=\"crtr\"} 1")) << t;
  EXPECT_TRUE(has(t, "relive_migrations_started_total{strategy=\"crtr\"} 1")) << t;
  EXPECT_EQ(t.find("relive_migration_downtime_seconds_count"), std::string::npos) << t;
  EXPECT_TRUE(has(t, "relive_migrations_in_progress 0")) << t;
}

}  // namespace
}  // namespace relive::migrate
