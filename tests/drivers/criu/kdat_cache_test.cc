#include "drivers/criu/kdat_cache.h"

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "drivers/criu/criu_binary.h"

namespace relive::criu {
namespace {

// `criu check` runs in a private mount namespace with a tmpfs on /run (a child of the test,
// no shell); the cache it writes there is installed in the real /run while the object lives.
TEST(KdatCache, InstallsCriusCacheWhileItLives) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespace, CRIU)";
  struct statfs fs {};
  if (::statfs("/run", &fs) == 0 && fs.f_type == TMPFS_MAGIC)
    GTEST_SKIP() << "/run is a tmpfs here: CRIU keeps its own cache";
  Result<std::string> criu = find_criu();  // scripts/bootstrap.sh installs it
  ASSERT_TRUE(criu.ok()) << criu.status().to_string();
  {
    KdatCache cache = KdatCache::prime(*criu);
    EXPECT_EQ(cache.note(), "installed CRIU's kernel-feature cache in /run (not a tmpfs here)");
    struct stat st {};
    ASSERT_EQ(::stat("/run/criu.kdat", &st), 0);
    EXPECT_GT(st.st_size, 0);
  }
  EXPECT_NE(::access("/run/criu.kdat", F_OK), 0) << "the cache outlived its owner";
}

TEST(KdatCache, NoCacheFromAProgramThatIsNotCriu) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespace)";
  struct statfs fs {};
  if (::statfs("/run", &fs) == 0 && fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "/run is a tmpfs";
  KdatCache cache = KdatCache::prime("/bin/true");
  EXPECT_EQ(cache.note(), "could not make CRIU's kernel-feature cache");
}

}  // namespace
}  // namespace relive::criu
