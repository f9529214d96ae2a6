#include "ha/fast_capture.h"

#include <gtest/gtest.h>

namespace relive::ha {
namespace {

tracee::Mapping mapping(const char* perms, const char* path) {
  return {0x7f0000000000, 0x7f0000001000, perms, 0, path};
}

TEST(FastCapture, WritableSharedMemoryCRIUSavesIsFound) {
  for (const char* path : {"", "/dev/zero (deleted)", "/SYSV00000000 (deleted)", "/memfd:pool",
                           "/dev/shm/ring", "/work/dir/log (deleted)", "[anon_shmem]"}) {
    std::optional<std::string> found = shared_memory_written({mapping("rw-s", path)});
    EXPECT_TRUE(found.has_value()) << path;
  }
}

TEST(FastCapture, PrivateReadOnlyAndFileSharedMappingsAreNotSharedMemory) {
  std::vector<tracee::Mapping> maps = {mapping("rw-p", ""), mapping("r--s", "/dev/shm/ring"),
                                       mapping("rw-s", "/work/dir/data.db"),
                                       mapping("r-xp", "/usr/lib/libc.so.6")};
  EXPECT_EQ(shared_memory_written(maps), std::nullopt);
}

}  // namespace
}  // namespace relive::ha
