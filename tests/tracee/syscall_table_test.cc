#include "tracee/syscall_table.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <set>
#include <string>

#include "tracee/syscall_policy.h"

namespace relive::tracee {
namespace {

TEST(SyscallTable, KnowsCommonSyscalls) {
  EXPECT_STREQ(syscall_name(SYS_read), "read");
  EXPECT_STREQ(syscall_name(SYS_write), "write");
  EXPECT_STREQ(syscall_name(SYS_mmap), "mmap");
  EXPECT_STREQ(syscall_name(SYS_openat), "openat");
  EXPECT_STREQ(syscall_name(SYS_clone3), "clone3");
  EXPECT_STREQ(syscall_name(SYS_rseq), "rseq");
  EXPECT_STREQ(syscall_name(450), "set_mempolicy_home_node");
  EXPECT_STREQ(syscall_name(452), "fchmodat2");
  EXPECT_STREQ(syscall_name(kMaxSyscall), "open_tree_attr");
}

TEST(SyscallTable, UnknownNumbersHaveNoNameAndAreUnsupported) {
  for (int nr : {-1, 335, 423, kMaxSyscall + 1, 1 << 30}) {
    EXPECT_EQ(syscall_name(nr), nullptr) << nr;
    EXPECT_EQ(syscall_arg_count(nr), 6) << nr;
    EXPECT_EQ(syscall_spec(nr).policy, Policy::kUnsupported) << nr;
  }
}

TEST(SyscallTable, EachEntrySitsAtItsOwnNumberWithADistinctName) {
  std::set<std::string> seen;
  for (int nr = 0; nr <= kMaxSyscall; ++nr) {
    const SyscallSpec& s = syscall_spec(nr);
    EXPECT_EQ(s.nr, nr);
    if (s.name != nullptr) EXPECT_TRUE(seen.insert(s.name).second) << s.name;
  }
  EXPECT_EQ(seen.size(), 379u);
}

TEST(SyscallTable, ArgumentCounts) {
  EXPECT_EQ(syscall_arg_count(SYS_read), 3);
  EXPECT_EQ(syscall_arg_count(SYS_getpid), 0);
  EXPECT_EQ(syscall_arg_count(SYS_mmap), 6);
  EXPECT_EQ(syscall_arg_count(SYS_exit_group), 1);
  EXPECT_EQ(syscall_arg_count(SYS_openat2), 4);
  for (int nr = 0; nr <= kMaxSyscall; ++nr) EXPECT_LE(syscall_arg_count(nr), 6);
}

// Out-buffer rules name argument registers the call has, and only calls that run at record
// (emulated or native) write buffers the recorder must save.
TEST(SyscallTable, OutRulesNameArgumentsTheCallTakes) {
  for (int nr = 0; nr <= kMaxSyscall; ++nr) {
    const SyscallSpec& s = syscall_spec(nr);
    for (const OutRule& r : s.out) {
      if (r.kind == OutRule::kNone) continue;
      EXPECT_EQ(s.policy, Policy::kEmulate) << s.name;
      if (r.kind == OutRule::kByArguments || r.kind == OutRule::kFdSets) continue;
      EXPECT_LT(r.arg, s.args) << s.name;
      if (r.kind == OutRule::kArgTimes || r.kind == OutRule::kIov || r.kind == OutRule::kSockaddr)
        EXPECT_LT(r.count, s.args) << s.name;
    }
  }
}

TEST(SyscallTable, FlagsAndReasons) {
  EXPECT_TRUE(syscall_spec(SYS_dup3).flags & kFdTable);
  EXPECT_TRUE(syscall_spec(SYS_recvmsg).flags & kFdTable);  // SCM_RIGHTS
  EXPECT_FALSE(syscall_spec(SYS_recvfrom).flags & kFdTable);
  EXPECT_TRUE(syscall_spec(SYS_write).flags & kOutputWrite);
  EXPECT_TRUE(syscall_spec(SYS_clock_nanosleep).flags & kWritesOnEintr);
  EXPECT_STREQ(syscall_spec(SYS_io_uring_enter).why,
               "io_uring (the kernel completes requests behind the tracer's back)");
  EXPECT_EQ(syscall_spec(SYS_ptrace).why, nullptr);
  EXPECT_EQ(decide(SYS_ptrace, {}).why, "system call 101 is not supported");
}

}  // namespace
}  // namespace relive::tracee
