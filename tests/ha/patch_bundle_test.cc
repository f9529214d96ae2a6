#include "ha/patch_bundle.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/file_util.h"
#include "test_util.h"

namespace relive::ha {
namespace {

using relive::testing::TempDir;

BundleFiles sample() {
  return {{"relive-threads.img", std::string("threads\0state", 13)},
          {"pagemap-1.img", std::string(300, 'p')},
          {"tcp-stream-3f2a.img", ""}};
}

TEST(PatchBundle, RoundTrips) {
  Result<BundleFiles> back = decode_patch_bundle(encode_patch_bundle(sample()));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, sample());
}

TEST(PatchBundle, RefusesTruncationCorruptionAndPaths) {
  std::string good = encode_patch_bundle(sample());
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decode_patch_bundle(std::string_view(good).substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(decode_patch_bundle(good + "x").ok());
  for (const char* name : {"../core-1.img", "a/b", "..", "", "relive-patch.img", "x\ny"}) {
    EXPECT_FALSE(decode_patch_bundle(encode_patch_bundle({{name, "x"}})).ok()) << name;
  }
}

TEST(PatchBundle, UnpacksOverTheImagesAndGoes) {
  TempDir dir;
  std::string d = dir.path();
  ASSERT_TRUE(write_file_atomic(d + "/pagemap-1.img", "base").ok());
  ASSERT_TRUE(write_file_atomic(d + "/core-1.img", "core").ok());
  ASSERT_TRUE(unpack_patch_bundle(d).ok());  // no bundle: nothing to do
  ASSERT_TRUE(write_file_atomic(d + "/" + kPatchBundle, encode_patch_bundle(sample())).ok());
  ASSERT_TRUE(unpack_patch_bundle(d).ok());
  EXPECT_EQ(*read_file(d + "/pagemap-1.img"), std::string(300, 'p'));
  EXPECT_EQ(*read_file(d + "/core-1.img"), "core");
  EXPECT_EQ(read_file(d + "/relive-threads.img")->size(), 13u);
  EXPECT_NE(::access((d + "/" + kPatchBundle).c_str(), F_OK), 0);
}

}  // namespace
}  // namespace relive::ha
