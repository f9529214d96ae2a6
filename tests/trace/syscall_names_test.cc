#include "trace/syscall_names.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <set>
#include <string>

namespace relive::trace {
namespace {

TEST(SyscallNames, KnowsCommonSyscalls) {
  EXPECT_STREQ(syscall_name(SYS_read), "read");
  EXPECT_STREQ(syscall_name(SYS_write), "write");
  EXPECT_STREQ(syscall_name(SYS_mmap), "mmap");
  EXPECT_STREQ(syscall_name(SYS_openat), "openat");
  EXPECT_STREQ(syscall_name(SYS_clone3), "clone3");
  EXPECT_STREQ(syscall_name(SYS_rseq), "rseq");
  EXPECT_STREQ(syscall_name(450), "set_mempolicy_home_node");
}

TEST(SyscallNames, UnknownNumbersHaveNoName) {
  EXPECT_EQ(syscall_name(-1), nullptr);
  EXPECT_EQ(syscall_name(335), nullptr);
  EXPECT_EQ(syscall_name(423), nullptr);
  EXPECT_EQ(syscall_name(kSyscallTableSize), nullptr);
  EXPECT_EQ(syscall_name(1 << 30), nullptr);
}

TEST(SyscallNames, EveryNameIsDistinct) {
  std::set<std::string> seen;
  for (int nr = 0; nr < kSyscallTableSize; ++nr) {
    if (const char* name = syscall_name(nr)) EXPECT_TRUE(seen.insert(name).second) << name;
  }
  EXPECT_EQ(seen.size(), 362u);
}

TEST(SyscallNames, ArgumentCounts) {
  EXPECT_EQ(syscall_arg_count(SYS_read), 3);
  EXPECT_EQ(syscall_arg_count(SYS_getpid), 0);
  EXPECT_EQ(syscall_arg_count(SYS_mmap), 6);
  EXPECT_EQ(syscall_arg_count(SYS_exit_group), 1);
  EXPECT_EQ(syscall_arg_count(SYS_openat2), 4);
  EXPECT_EQ(syscall_arg_count(999), 6);
  for (int nr = 0; nr < kSyscallTableSize; ++nr) {
    EXPECT_GE(syscall_arg_count(nr), 0);
    EXPECT_LE(syscall_arg_count(nr), 6);
  }
}

}  // namespace
}  // namespace relive::trace
