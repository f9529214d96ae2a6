// Reading a VM's disks from QEMU's query-block answer (untrusted input: QEMU's monitor).
#include "migrate/vm_disk_spec.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace relive::migrate {
namespace {

using nlohmann::json;

json drive(const std::string& device, json image) {
  return {{"device", device},
          {"locked", false},
          {"removable", false},
          {"inserted",
           {{"node-name", "#block1"}, {"drv", image.value("format", "")}, {"image", image}}}};
}

json raw_image() {
  return {{"filename", "/vm/a.raw"}, {"format", "raw"}, {"virtual-size", 16 << 20}};
}

json overlay_image(json base) {
  return {{"filename", "/vm/b.qcow2"},
          {"format", "qcow2"},
          {"virtual-size", 1ull << 30},
          {"backing-filename", "base.raw"},
          {"full-backing-filename", "/vm/base.raw"},
          {"backing-image", base}};
}

TEST(VmDiskSpec, ReadsRawAndOverlayDisksAndSkipsEmptyDrives) {
  json blocks = json::array({drive("disk0", raw_image()),
                             {{"device", "cd0"}, {"removable", true}},
                             drive("disk1", overlay_image({{"filename", "/vm/base.raw"},
                                                           {"format", "raw"},
                                                           {"virtual-size", 1ull << 30}}))});
  Result<std::vector<migration::VmDisk>> d = vm_disks_from_query_block(blocks);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[0], (migration::VmDisk{"disk0", "/vm/a.raw", "raw", 16 << 20, "", "", ""}));
  EXPECT_EQ((*d)[1], (migration::VmDisk{"disk1", "/vm/b.qcow2", "qcow2", 1ull << 30, "/vm/base.raw",
                                        "raw", ""}));
}

TEST(VmDiskSpec, RefusesWhatItCannotCopy) {
  json vmdk = {{"filename", "/vm/c.vmdk"}, {"format", "vmdk"}, {"virtual-size", 4096}};
  EXPECT_EQ(vm_disks_from_query_block(json::array({drive("d", vmdk)})).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(vm_disks_from_query_block(json::array({drive("", raw_image())})).status().code(),
            Status::Code::kInvalidArgument);
  json chained = overlay_image({{"filename", "/vm/base.qcow2"},
                                {"format", "qcow2"},
                                {"virtual-size", 1ull << 30},
                                {"backing-filename", "/vm/older.raw"}});
  Result<std::vector<migration::VmDisk>> c =
      vm_disks_from_query_block(json::array({drive("d", chained)}));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().to_string().find("one level"), std::string::npos) << c.status().to_string();
  // Shared storage only needs the paths: the same disks are listed, the drive without an id
  // skipped.
  Result<std::vector<migration::VmDisk>> shared =
      vm_disks_from_query_block(json::array({drive("d", vmdk), drive("", raw_image())}), false);
  ASSERT_TRUE(shared.ok()) << shared.status().to_string();
  ASSERT_EQ(shared->size(), 1u);
  EXPECT_EQ((*shared)[0].path, "/vm/c.vmdk");
}

TEST(VmDiskSpec, MalformedAnswersAreCorruption) {
  for (const json& bad :
       {json::object(), json::array({json(7)}),
        json::array({drive("d", {{"filename", "/a"}, {"format", "raw"}})}),
        json::array({drive("d", {{"filename", "/a"}, {"format", "raw"}, {"virtual-size", -1}})}),
        json::array({drive("d", {{"filename", 3}, {"format", "raw"}, {"virtual-size", 1}})})}) {
    Result<std::vector<migration::VmDisk>> d = vm_disks_from_query_block(bad);
    ASSERT_FALSE(d.ok()) << bad.dump();
    EXPECT_EQ(d.status().code(), Status::Code::kCorruption) << bad.dump();
  }
}

TEST(VmDiskSpec, HashesTellFilesApart) {
  testing::TempDir dir;
  testing::write_all_to(dir / "a", std::string(3 << 20, 'a'));
  testing::write_all_to(dir / "b", std::string(3 << 20, 'a'));
  testing::write_all_to(dir / "c", std::string(3 << 20, 'a') + "c");
  Result<std::string> a = hash_image_file(dir / "a"), b = hash_image_file(dir / "b"),
                      c = hash_image_file(dir / "c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_EQ(a->size(), 32u);
  EXPECT_FALSE(hash_image_file(dir / "missing").ok());
}

}  // namespace
}  // namespace relive::migrate
