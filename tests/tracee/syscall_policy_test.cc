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

// An attached recording logs the mappings the kernel places and pins their replay there.
TEST(SyscallPolicy, KernelPlacedMappingsArePinnedToTheRecordedAddress) {
  SyscallArgs anon{0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, ~0ull, 0};
  EXPECT_TRUE(kernel_places(SYS_mmap, anon));
  SyscallArgs fixed = anon;
  fixed[3] |= MAP_FIXED;
  EXPECT_FALSE(kernel_places(SYS_mmap, fixed));
  SyscallArgs file{0, 8192, PROT_READ, MAP_PRIVATE, 3, 0};
  EXPECT_FALSE(kernel_places(SYS_mmap, file));  // saved and mapped by the replay itself
  EXPECT_TRUE(kernel_places(SYS_mremap, {0x1000, 4096, 8192, MREMAP_MAYMOVE, 0, 0}));
  EXPECT_FALSE(kernel_places(SYS_mremap, {0x1000, 4096, 8192, 0, 0, 0}));
  EXPECT_FALSE(
      kernel_places(SYS_mremap, {0x1000, 4096, 8192, MREMAP_MAYMOVE | MREMAP_FIXED, 0x9000, 0}));

  Regs r{};
  r.r10 = MAP_PRIVATE | MAP_ANONYMOUS;
  ASSERT_TRUE(pin_placement(SYS_mmap, 0x7f0000000000, &r));
  EXPECT_EQ(r.rdi, 0x7f0000000000u);
  EXPECT_EQ(r.r10, static_cast<uint64_t>(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE));
  Regs m{};
  m.rdi = 0x1000, m.r10 = MREMAP_MAYMOVE;
  ASSERT_TRUE(pin_placement(SYS_mremap, 0x7f0000100000, &m));
  EXPECT_EQ(m.r8, 0x7f0000100000u);
  EXPECT_EQ(m.r10, static_cast<uint64_t>(MREMAP_MAYMOVE | MREMAP_FIXED));
  Regs in_place{};
  in_place.rdi = 0x1000, in_place.r10 = MREMAP_MAYMOVE;
  EXPECT_FALSE(pin_placement(SYS_mremap, 0x1000, &in_place));  // it grew where it was
}

}  // namespace
}  // namespace relive::tracee
