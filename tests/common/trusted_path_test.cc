#include "common/trusted_path.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "test_util.h"

namespace relive {
namespace {

class TrustedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_ / "lib";
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
    file_ = dir_ + "/libshim.so";
    relive::testing::write_all_to(file_, "not really a library");
    ASSERT_EQ(::chmod(file_.c_str(), 0644), 0);
  }
  relive::testing::TempDir tmp_;  // under /tmp: sticky, root's
  std::string dir_, file_;
};

TEST_F(TrustedFileTest, AcceptsRootOwnedFileInRootOwnedDirectories) {
  auto r = trusted_file(file_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, std::filesystem::canonical(file_).string());
}

TEST_F(TrustedFileTest, RefusesWorldWritableDirectory) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  auto r = trusted_file(file_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(dir_ + " is writable by group or others (mode 0777)"),
            std::string::npos)
      << r.status().message();
}

TEST_F(TrustedFileTest, RefusesGroupWritableParentFurtherUp) {
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0770), 0);
  auto r = trusted_file(file_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(tmp_.path() + " is writable"), std::string::npos)
      << r.status().message();
}

TEST_F(TrustedFileTest, RefusesWritableFile) {
  ASSERT_EQ(::chmod(file_.c_str(), 0666), 0);
  auto r = trusted_file(file_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(file_ + " is writable"), std::string::npos)
      << r.status().message();
}

TEST_F(TrustedFileTest, RefusesFileOwnedBySomeoneElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file away";
  ASSERT_EQ(::chown(file_.c_str(), 65534, 65534), 0);
  auto r = trusted_file(file_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("owned by uid 65534"), std::string::npos)
      << r.status().message();
}

TEST_F(TrustedFileTest, ChecksWhereASymlinkLeads) {
  std::string open_dir = tmp_ / "open";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  std::string target = open_dir + "/evil.so";
  relive::testing::write_all_to(target, "x");
  std::string link = dir_ + "/link.so";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  auto r = trusted_file(link);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(open_dir), std::string::npos) << r.status().message();
}

TEST_F(TrustedFileTest, MissingAndNotAFile) {
  EXPECT_EQ(trusted_file(dir_ + "/absent.so").status().code(), Status::Code::kNotFound);
  EXPECT_FALSE(trusted_file(dir_).ok());
}

}  // namespace
}  // namespace relive
