// The migration report states the bandwidth cap and what the metered link achieved, in both
// forms (`relive migrate` and `relive migrate --json`).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "relive/migrate.h"

namespace relive {
namespace {

MigrateReport capped() {
  MigrateReport r;
  r.strategy = "precopy";
  r.reason = "requested";
  r.max_bandwidth = 20000000;
  r.link_bytes = 40000000;
  r.link_busy_ms = 2000;
  r.link_rate = 20000000;
  return r;
}

TEST(MigrateReport, TextStatesTheCapAndTheAchievedRate) {
  std::string text = migrate_report_text(capped());
  EXPECT_NE(text.find("bandwidth: cap 20000000 B/s, sent 40000000 bytes in 2000.0 ms busy, "
                      "20000000 B/s"),
            std::string::npos)
      << text;
}

TEST(MigrateReport, TextSaysWhenThereIsNoCap) {
  MigrateReport r = capped();
  r.max_bandwidth = 0;
  EXPECT_NE(migrate_report_text(r).find("bandwidth: cap none,"), std::string::npos);
}

TEST(MigrateReport, JsonHasTheCapAndTheLinkFigures) {
  auto j = nlohmann::json::parse(migrate_report_json(capped()));
  EXPECT_EQ(j["max_bandwidth"].get<uint64_t>(), 20000000u);
  EXPECT_EQ(j["link_bytes"].get<uint64_t>(), 40000000u);
  EXPECT_DOUBLE_EQ(j["link_busy_ms"].get<double>(), 2000);
  EXPECT_DOUBLE_EQ(j["link_rate"].get<double>(), 20000000);
}

TEST(MigrateReport, VmReportsEveryDiskItCopied) {
  MigrateReport r = capped();
  r.vm_dir = "/var/lib/relive/vms/vm.x";
  r.disks = {{"disk0", "raw", "full", 1074593792, 1073741824, 4227.5},
             {"disk1", "qcow2", "top", 458752, 16777216, 606.25}};
  auto j = nlohmann::json::parse(migrate_report_json(r));
  ASSERT_EQ(j["disks"].size(), 2u);
  EXPECT_EQ(j["disks"][0]["device"], "disk0");
  EXPECT_EQ(j["disks"][0]["bytes"].get<uint64_t>(), 1074593792u);
  EXPECT_DOUBLE_EQ(j["disks"][0]["ms"].get<double>(), 4227.5);
  EXPECT_EQ(j["disks"][1]["mode"], "top");
  std::string text = migrate_report_text(r);
  EXPECT_NE(text.find("disk disk1: qcow2 top, 458752 of 16777216 bytes in 606.2 ms"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace relive
