// An HA workload that holds a file of its own in the host's /proc (/proc/<its PID>/stat, which is
// what /proc/self/stat becomes) cannot be restored from a checkpoint taken at that moment: the
// restored process has another PID. Such an epoch must never be committed, or a failover would
// find nothing it can restore. The workload here holds /proc/self/stat until told to let go:
// while it holds it the primary refuses every epoch and says why, and after a while serves
// unprotected rather than hold the output for ever; once it lets go, epochs commit again and a
// failover restores it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ha_pair_fixture.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

class HaProcPaths : public HaPairFixture {
 protected:
  std::string workload_toml() const override {
    return fmt::format(R"([workload]
command = ["{bin}"]
directory = "{dir}"
service_address = "{svc}/24"
netns = "{ns}"
)",
                       fmt::arg("bin", test_bin_dir() + "/subjects/proc_self_holder"),
                       fmt::arg("dir", std::string(dir_ / "w")), fmt::arg("svc", service()),
                       fmt::arg("ns", netns_));
  }
  void kill_leftovers() override {
    sh("pkill -9 -f '^" + test_bin_dir() + "/subjects/proc_self_holder$' 2>/dev/null; true");
  }
  unsigned long count() const {
    return std::strtoul(read_all(dir_ / "w/count").c_str(), nullptr, 10);
  }
  bool gave_up_protection(int i) const {
    auto s = status();
    if (s.size() != 2 || s[i].value("protection", "") != "unprotected") return false;
    for (const auto& a : s[i].value("alerts", nlohmann::json::array())) {
      if (a.is_string() &&
          a.get<std::string>().find("every checkpoint failed") != std::string::npos)
        return true;
    }
    return false;
  }
  bool alert_names_proc(int i) const {
    auto s = status();
    if (s.size() != 2) return false;
    for (const auto& a : s[i].value("alerts", nlohmann::json::array())) {
      if (a.is_string() && a.get<std::string>().find("/stat open") != std::string::npos)
        return true;
    }
    return false;
  }
};

TEST_F(HaProcPaths, EpochsWaitUntilTheWorkloadLetsGoOfItsProcFile) {
  start_peer(0);
  ASSERT_TRUE(eventually([&] { return role(0) == "primary"; }, seconds(30))) << logs();
  start_peer(1);
  ASSERT_TRUE(eventually([&] { return alert_names_proc(0); }, seconds(60)))
      << "the primary never refused an epoch naming /proc/<pid>/stat" << logs();
  EXPECT_FALSE(protected_by_backup(0)) << "an epoch holding /proc/<pid>/stat was committed";
  // Held output may not wait for ever: once every checkpoint has failed for a while the
  // primary serves unprotected and says why.
  ASSERT_TRUE(eventually([&] { return gave_up_protection(0); }, seconds(60)))
      << "the primary kept holding output while no checkpoint could succeed" << logs();

  write_all_to(dir_ / "w/release", "");
  ASSERT_TRUE(eventually([&] { return protected_by_backup(0); }, seconds(60))) << logs();
  unsigned long before = count();
  ASSERT_GT(before, 0u) << "the workload never started counting";

  kill_host_a();
  ASSERT_TRUE(eventually([&] { return role(1) == "primary"; }, seconds(30))) << logs();
  ASSERT_TRUE(eventually([&] { return count() > before + 10; }, seconds(30)))
      << "the restored workload does not run: count stays " << count() << logs();
}

}  // namespace
}  // namespace relive::testing
