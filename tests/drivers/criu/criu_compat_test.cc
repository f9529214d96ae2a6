#include "drivers/criu/criu_compat.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include "test_util.h"

namespace relive::criu {
namespace {

using relive::testing::read_all;
using relive::testing::TempDir;
using relive::testing::write_all_to;

// Sets $RELIVE_CRIU_SHIM for one test.
class ShimOverride {
 public:
  explicit ShimOverride(const std::string& path) { ::setenv("RELIVE_CRIU_SHIM", path.c_str(), 1); }
  ~ShimOverride() { ::unsetenv("RELIVE_CRIU_SHIM"); }
};

TEST(CriuCompat, FindsTheShimBesideTheExecutable) {
  // Test binaries live in <build>/tests, the shim in <build>/lib/relive.
  Result<std::string> shim = find_sockopt_shim();
  ASSERT_TRUE(shim.ok()) << shim.status().to_string();
  EXPECT_TRUE(shim->ends_with("/lib/relive/librelive_criu_sockopt_shim.so")) << *shim;
}

TEST(CriuCompat, RefusesAShimOthersCouldHaveWritten) {
  TempDir dir;
  std::string open_dir = dir / "open";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  std::string shim = open_dir + "/shim.so";
  write_all_to(shim, "x");
  ASSERT_EQ(::chmod(shim.c_str(), 0644), 0);
  ShimOverride env(shim);
  Result<std::string> r = criu_with_compat(dir.path(), "/usr/sbin/criu");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("refusing to preload the CRIU shim " + shim),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("writable by group or others"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "criu-wrapper"));
}

TEST(CriuCompat, PreloadsATrustedShimByItsRealPath) {
  TempDir dir;
  std::string lib = dir / "lib";
  ASSERT_EQ(::mkdir(lib.c_str(), 0755), 0);
  write_all_to(lib + "/shim.so", "x");
  ASSERT_EQ(::chmod((lib + "/shim.so").c_str(), 0644), 0);
  ASSERT_EQ(::symlink("shim.so", (lib + "/link.so").c_str()), 0);
  ShimOverride env(lib + "/link.so");
  Result<std::string> r = criu_with_compat(dir.path(), "/usr/sbin/criu");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::string script = read_all(*r);
  EXPECT_NE(
      script.find("LD_PRELOAD='" + std::filesystem::canonical(lib + "/shim.so").string() + "'"),
      std::string::npos)
      << script;
}

}  // namespace
}  // namespace relive::criu
