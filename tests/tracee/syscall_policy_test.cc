#include "tracee/syscall_policy.h"

#include <gtest/gtest.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>

namespace relive::tracee {
namespace {

SyscallArgs args(uint64_t a0 = 0, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0) {
  return {a0, a1, a2, a3, 0, 0};
}

TEST(SyscallPolicy, MemoryManagementRunsUntraced) {
  EXPECT_EQ(base_policy(SYS_munmap), Policy::kAllow);
  EXPECT_EQ(base_policy(SYS_brk), Policy::kAllow);
  EXPECT_EQ(decide(SYS_mmap, args(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)).policy,
            Policy::kAllow);
}

// Shared writable ones too: the capture refuses one a process outside the recording holds.
TEST(SyscallPolicy, FileMappingsAreSaved) {
  EXPECT_EQ(decide(SYS_mmap, args(0, 4096, PROT_READ, MAP_PRIVATE)).policy, Policy::kMmapFile);
  EXPECT_EQ(decide(SYS_mmap, args(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED)).policy,
            Policy::kMmapFile);
}

TEST(SyscallPolicy, ExternalInputsAreEmulated) {
  for (int nr : {SYS_read, SYS_openat, SYS_clock_gettime, SYS_getrandom, SYS_recvfrom, SYS_poll,
                 SYS_getpid, SYS_uname, SYS_futex})
    EXPECT_EQ(decide(nr, args(0, 0x80 /*FUTEX_PRIVATE|WAIT*/)).policy, Policy::kEmulate) << nr;
}

TEST(SyscallPolicy, ThreadsForksAndExecs) {
  uint64_t thread = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND | CLONE_FS | CLONE_FILES;
  EXPECT_EQ(decide(SYS_clone, args(thread)).policy, Policy::kClone);
  EXPECT_EQ(decide(SYS_clone3, args(), thread).policy, Policy::kClone);
  EXPECT_EQ(decide(SYS_clone, args(SIGCHLD)).policy, Policy::kFork);
  EXPECT_EQ(decide(SYS_clone3, args(), CLONE_VM | CLONE_VFORK).policy, Policy::kFork);
  EXPECT_EQ(decide(SYS_vfork, args()).policy, Policy::kFork);
  EXPECT_EQ(decide(SYS_execve, args()).policy, Policy::kExec);
  EXPECT_EQ(decide(SYS_clone, args(CLONE_NEWPID | SIGCHLD)).policy, Policy::kUnsupported);
  EXPECT_EQ(decide(SYS_clone, args(CLONE_VM | SIGCHLD)).policy, Policy::kUnsupported);
}

TEST(SyscallPolicy, WhatCannotBeReplayedIsRefusedWithAReason) {
  for (int nr : {SYS_io_uring_setup, SYS_shmat, SYS_execveat, SYS_ptrace, SYS_perf_event_open,
                 SYS_userfaultfd, SYS_bpf}) {
    Decision d = decide(nr, args());
    EXPECT_EQ(d.policy, Policy::kUnsupported) << nr;
    EXPECT_FALSE(d.why.empty()) << nr;
  }
  EXPECT_EQ(decide(-1, args()).policy, Policy::kUnsupported);
  EXPECT_EQ(decide(100000, args()).policy, Policy::kUnsupported);
}

TEST(SyscallPolicy, RseqIsDenied) { EXPECT_EQ(base_policy(SYS_rseq), Policy::kDenyNosys); }

TEST(SyscallPolicy, FdTableChanges) {
  EXPECT_TRUE(changes_fd_table(SYS_close));
  EXPECT_TRUE(changes_fd_table(SYS_dup2));
  EXPECT_FALSE(changes_fd_table(SYS_read));
  EXPECT_TRUE(is_output_write(SYS_writev));
  EXPECT_TRUE(is_output_write(SYS_sendto));  // hashed at record, checked at replay
  EXPECT_FALSE(is_output_write(SYS_recvfrom));
}

}  // namespace
}  // namespace relive::tracee
