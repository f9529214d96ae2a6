// DiskTracker against a real QEMU (no guest: its block layer is written through the monitor's
// qemu-io): a full epoch is the whole disk as of the cut, including what was written after the
// copy; a delta epoch carries exactly the blocks written since the last cut.
#include "ha/disk_tracker.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "common/file_util.h"
#include "drivers/qemu/qemu_img.h"
#include "drivers/qemu/qemu_process.h"
#include "test_util.h"

namespace relive::ha {
namespace {

class DiskTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0) GTEST_SKIP() << "no QEMU";
  }
  // QEMU with the raw image `size` bytes big as drive d0.
  void boot(uint64_t size, const std::string& format = "raw") {
    format_ = format;
    image_ = dir_ / ("d." + format);
    if (format == "raw") {
      testing::write_all_to(image_, "");
      ASSERT_EQ(::truncate(image_.c_str(), static_cast<off_t>(size)), 0);
    } else {
      ASSERT_TRUE(qemu::create_image(image_, {format, size, "", ""}).ok());
    }
    qemu::QemuLaunch l;
    l.argv = {"qemu-system-x86_64",
              "-accel",
              "tcg",
              "-S",
              "-nodefaults",
              "-display",
              "none",
              "-m",
              "32",
              "-drive",
              "file=" + image_ + ",format=" + format + ",if=virtio,id=d0",
              "-qmp",
              "unix:" + dir_ / "qmp.sock" + ",server=on,wait=off"};
    l.log_file = dir_ / "qemu.log";
    Result<qemu::QemuProcess> q = qemu::QemuProcess::start(l);
    ASSERT_TRUE(q.ok()) << q.status().to_string();
    qemu_.emplace(std::move(*q));
    Result<qemu::QmpClient> c =
        qemu::QmpClient::connect(dir_ / "qmp.sock", std::chrono::seconds(30));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    qmp_.emplace(std::move(*c));
    ASSERT_TRUE(make_dirs(dir_ / "work").ok());
  }
  // The guest's view of the disk gets `byte` over [offset, offset + 4096).
  void write(uint64_t offset, char byte) {
    std::string cmd = fmt::format("qemu-io d0 \"write -P {} {} 4k\"", int(byte), offset);
    Result<nlohmann::json> r = qmp_->execute("human-monitor-command", {{"command-line", cmd}});
    ASSERT_TRUE(r.ok()) << r.status().to_string();  // (qemu-io reports on QEMU's stdout)
  }
  std::vector<VmDiskConfig> disks() const { return {{"d0", image_, format_}}; }
  static std::string read_at(const std::string& file, uint64_t offset, uint64_t n) {
    std::string all = testing::read_all(file);
    return offset + n <= all.size() ? all.substr(offset, n) : "";
  }

  testing::TempDir dir_;
  std::string image_;
  std::string format_;
  std::optional<qemu::QemuProcess> qemu_;
  std::optional<qemu::QmpClient> qmp_;
};

TEST_F(DiskTrackerTest, FullThenDeltaEpochsCarryTheDiskAsOfEachCut) {
  boot(1 << 20);
  Result<DiskTracker> t = DiskTracker::create(&*qmp_, disks(), dir_ / "work");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  write(8192, 'a');
  ASSERT_TRUE(t->copy_all(&*qmp_).ok());
  write(65536, 'b');  // after the copy, before the cut: the cut must add it
  Result<std::vector<DiskRun>> full = t->capture(&*qmp_, true);
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  uint64_t covered = 0;
  for (const DiskRun& r : *full) {
    EXPECT_EQ(r.disk, 0u);
    EXPECT_EQ(r.offset, covered);
    covered += r.bytes;
  }
  EXPECT_EQ(covered, 1u << 20);
  const std::string& copy = full->front().file;
  EXPECT_EQ(read_at(copy, 8192, 4096), std::string(4096, 'a'));
  EXPECT_EQ(read_at(copy, 65536, 4096), std::string(4096, 'b'));
  EXPECT_EQ(read_at(copy, 0, 4096), std::string(4096, '\0'));
  t->drop_copies();
  EXPECT_NE(::access(copy.c_str(), F_OK), 0) << "the whole-disk copy outlived its commit";

  write(131072, 'c');
  write(135168, 'd');  // adjacent: one run
  write(8192, 'e');
  Result<std::vector<DiskRun>> delta = t->capture(&*qmp_, false);
  ASSERT_TRUE(delta.ok()) << delta.status().to_string();
  ASSERT_EQ(delta->size(), 2u);
  EXPECT_EQ((*delta)[0].offset, 8192u);
  EXPECT_EQ((*delta)[0].bytes, 4096u);
  EXPECT_EQ(read_at((*delta)[0].file, (*delta)[0].file_offset, 4096), std::string(4096, 'e'));
  EXPECT_EQ((*delta)[1].offset, 131072u);
  EXPECT_EQ((*delta)[1].bytes, 8192u);
  EXPECT_EQ(read_at((*delta)[1].file, (*delta)[1].file_offset, 8192),
            std::string(4096, 'c') + std::string(4096, 'd'));

  // Nothing written: an empty delta.
  Result<std::vector<DiskRun>> none = t->capture(&*qmp_, false);
  ASSERT_TRUE(none.ok()) << none.status().to_string();
  EXPECT_TRUE(none->empty());
}

// A qcow2 disk travels as what the guest sees (the backup's copy is raw), not as qcow2 clusters.
TEST_F(DiskTrackerTest, AQcow2DiskIsCopiedAsTheGuestSeesIt) {
  boot(1 << 20, "qcow2");
  Result<DiskTracker> t = DiskTracker::create(&*qmp_, disks(), dir_ / "work");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  write(12288, 'q');
  ASSERT_TRUE(t->copy_all(&*qmp_).ok());
  Result<std::vector<DiskRun>> full = t->capture(&*qmp_, true);
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  EXPECT_EQ(testing::read_all(full->front().file).size(), 1u << 20);
  EXPECT_EQ(read_at(full->front().file, 12288, 4096), std::string(4096, 'q'));
  write(20480, 'r');
  Result<std::vector<DiskRun>> delta = t->capture(&*qmp_, false);
  ASSERT_TRUE(delta.ok()) << delta.status().to_string();
  ASSERT_EQ(delta->size(), 1u);
  EXPECT_EQ((*delta)[0].offset, 20480u);
  EXPECT_EQ(read_at((*delta)[0].file, (*delta)[0].file_offset, 4096), std::string(4096, 'r'));
}

TEST_F(DiskTrackerTest, ADeltaBeforeAnyFullEpochIsRefused) {
  boot(1 << 20);
  Result<DiskTracker> t = DiskTracker::create(&*qmp_, disks(), dir_ / "work");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->capture(&*qmp_, false).status().code(), Status::Code::kAborted);
}

TEST_F(DiskTrackerTest, RefusesADiskNotMadeOfWholeBlocks) {
  boot((1 << 20) + 512);
  Result<DiskTracker> t = DiskTracker::create(&*qmp_, disks(), dir_ / "work");
  ASSERT_EQ(t.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(t.status().message().find("multiple of 4 KiB"), std::string::npos);
}

TEST_F(DiskTrackerTest, ADriveQemuDoesNotHaveIsNotFound) {
  boot(1 << 20);
  std::vector<VmDiskConfig> d = {{"d9", image_, "raw"}};
  EXPECT_EQ(DiskTracker::create(&*qmp_, d, dir_ / "work").status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace relive::ha
