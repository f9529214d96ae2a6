#include "container/image_summary.h"

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "test_util.h"

namespace relive::container {
namespace {

TEST(PidBoundProcPath, NumberedProcessDirectoriesAreBound) {
  EXPECT_TRUE(is_pid_bound_proc_path("/proc/123/stat"));
  EXPECT_TRUE(is_pid_bound_proc_path("proc/123/stat"));  // CRIU's restore-side spelling
  EXPECT_TRUE(is_pid_bound_proc_path("/proc/7/task/8/comm"));
  EXPECT_TRUE(is_pid_bound_proc_path("/proc/42"));
}

TEST(PidBoundProcPath, OtherPathsAreNot) {
  EXPECT_FALSE(is_pid_bound_proc_path("/proc/self/stat"));  // resolved at open, not at dump
  EXPECT_FALSE(is_pid_bound_proc_path("/proc/meminfo"));
  EXPECT_FALSE(is_pid_bound_proc_path("/proc/12x/stat"));
  EXPECT_FALSE(is_pid_bound_proc_path("/proc/"));
  EXPECT_FALSE(is_pid_bound_proc_path("/procs/1/stat"));
  EXPECT_FALSE(is_pid_bound_proc_path("/srv/proc/1/stat"));
  EXPECT_FALSE(is_pid_bound_proc_path(""));
}

TEST(RegularFilesInImagesDir, NoFilesImageMeansNoFiles) {
  relive::testing::TempDir dir;
  Result<std::vector<std::string>> files = regular_files_in_images_dir(dir.path());
  ASSERT_TRUE(files.ok()) << files.status().to_string();
  EXPECT_TRUE(files->empty());
}

TEST(RegularFilesInImagesDir, CorruptFilesImageIsAnError) {
  relive::testing::TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.path() + "/files.img", "not a CRIU image at all").ok());
  Result<std::vector<std::string>> files = regular_files_in_images_dir(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.status().message().find("files.img"), std::string::npos)
      << files.status().to_string();
}

}  // namespace
}  // namespace relive::container
