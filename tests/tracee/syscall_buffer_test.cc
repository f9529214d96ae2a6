// The fast path's trampolines run here, in the test process itself (the trampoline page and the
// syscall buffer mapped at their fixed addresses, no seccomp filter), and the buffer they fill is
// decoded as the recorder decodes it.
#include "tracee/syscall_buffer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>

#include "tracee/fast_path_abi.h"
#include "tracee/out_buffers.h"
#include "tracee/vdso.h"

namespace {

// Every register after a call, the flags, and the word just below the stack pointer the callee
// started with (the harness puts r13's value there before the call).
struct RegDump {
  uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15, flags, below;
  bool operator==(const RegDump&) const = default;
};

}  // namespace

// relive_test_call(target, arg0, arg1, out): calls `target` with the two arguments, every other
// register set to a known value and the flags to a known pattern (CF PF AF ZF SF OF), and stores
// every register and the flags after the call in *out.
extern "C" void relive_test_call(uint64_t target, uint64_t arg0, uint64_t arg1, RegDump* out);
asm(R"(
  .text
  .globl relive_test_call
  .type relive_test_call, @function
relive_test_call:
  push %rbx
  push %rbp
  push %r12
  push %r13
  push %r14
  push %r15
  push %rcx
  push %rdi
  mov %rsi, %rdi
  mov %rdx, %rsi
  movabs $0x0101010101010101, %rax
  movabs $0x1010101010101010, %rbx
  movabs $0x2020202020202020, %rbp
  movabs $0x3030303030303030, %rdx
  movabs $0x4040404040404040, %r8
  movabs $0x4141414141414141, %r9
  movabs $0x4242424242424242, %r10
  movabs $0x4343434343434343, %r12
  movabs $0x4444444444444444, %r13
  movabs $0x4545454545454545, %r14
  movabs $0x4646464646464646, %r15
  movabs $0x5050505050505050, %rcx
  movabs $0x6060606060606060, %r11
  push $0x8d7
  popfq
  mov %r13, -16(%rsp)
  call *(%rsp)
  pushfq
  xchg %rax, 16(%rsp)
  mov %rbx, 8(%rax)
  mov %rcx, 16(%rax)
  mov %rdx, 24(%rax)
  mov %rsi, 32(%rax)
  mov %rdi, 40(%rax)
  mov %rbp, 48(%rax)
  mov %r8, 56(%rax)
  mov %r9, 64(%rax)
  mov %r10, 72(%rax)
  mov %r11, 80(%rax)
  mov %r12, 88(%rax)
  mov %r13, 96(%rax)
  mov %r14, 104(%rax)
  mov %r15, 112(%rax)
  mov -8(%rsp), %rcx
  mov %rcx, 128(%rax)
  pop %rcx
  mov %rcx, 120(%rax)
  pop %rcx
  pop %rcx
  mov %rcx, 0(%rax)
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbp
  pop %rbx
  ret
  .size relive_test_call, .-relive_test_call
)");

namespace relive::tracee {
namespace {

uint64_t addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

// The vDSO's targets (vdso.cc): clock_gettime, gettimeofday and time, in this order.
uint64_t fast_entry(int index) {
  return kTrampolineAddr + kFastTrampolineOffset + index * kFastTrampolineStride;
}
uint64_t plain_entry(int index) { return kTrampolineAddr + index * 16; }

SyscallBufferHeader* header() { return reinterpret_cast<SyscallBufferHeader*>(kSyscallBufferAddr); }

class SyscallBufferTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (auto [at, len] : {std::pair{kTrampolineAddr, kTrampolineSize},
                           std::pair{kSyscallBufferAddr, kSyscallBufferSize}}) {
      void* p = ::mmap(reinterpret_cast<void*>(at), len, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      ASSERT_TRUE(p == reinterpret_cast<void*>(at) || errno == EEXIST) << std::strerror(errno);
    }
    std::string page = trampoline_page();
    std::memcpy(reinterpret_cast<void*>(kTrampolineAddr), page.data(), page.size());
  }
  void SetUp() override {
    std::memset(reinterpret_cast<void*>(kSyscallBufferAddr), 0, kSyscallBufferSize);
  }
  static void reset(uint64_t room) {
    header()->next = kFirstEntryAddr;
    header()->room = room;
    header()->logged = kFirstEntryAddr;
  }
  // What the recorder would log now (it reads the same bytes from the tracee).
  static std::vector<BufferedCall> drain() {
    std::string entries(reinterpret_cast<const char*>(header()->logged),
                        header()->next - header()->logged);
    auto calls = decode_syscall_buffer(*header(), entries);
    EXPECT_TRUE(calls.ok()) << calls.status().to_string();
    return calls.ok() ? *calls : std::vector<BufferedCall>{};
  }
};

TEST_F(SyscallBufferTest, AFastCallLeavesEveryRegisterAsTheTracedCallDoes) {
  timespec ts{};
  RegDump traced{}, slow{}, fast{};
  relive_test_call(plain_entry(0), CLOCK_MONOTONIC, addr(&ts), &traced);
  relive_test_call(fast_entry(0), CLOCK_MONOTONIC, addr(&ts), &slow);  // no room: traced path
  EXPECT_EQ(header()->room, 0u);
  reset(10);
  relive_test_call(fast_entry(0), CLOCK_MONOTONIC, addr(&ts), &fast);
  EXPECT_EQ(header()->room, 9u);
  EXPECT_EQ(traced.rax, 0u);
  EXPECT_EQ(slow, traced);
  EXPECT_EQ(fast, traced);
  EXPECT_EQ(fast.rcx, plain_entry(0) + 7);  // where the traced call's syscall returns

  timeval tv{};
  relive_test_call(plain_entry(1), addr(&tv), 0, &traced);
  relive_test_call(fast_entry(1), addr(&tv), 0, &fast);
  EXPECT_EQ(fast, traced);
  relive_test_call(plain_entry(2), 0, 0, &traced);
  relive_test_call(fast_entry(2), 0, 0, &fast);
  fast.rax = traced.rax;  // seconds: a second may have passed
  EXPECT_EQ(fast, traced);
  EXPECT_EQ(header()->room, 7u);
}

TEST_F(SyscallBufferTest, EachFastCallIsLoggedWithWhatItWrote) {
  reset(100);
  timespec ts{};
  timeval tv{};
  RegDump r{};
  relive_test_call(fast_entry(0), CLOCK_REALTIME, addr(&ts), &r);
  relive_test_call(fast_entry(1), addr(&tv), 0, &r);
  relive_test_call(fast_entry(2), 0, 0, &r);
  int64_t now = static_cast<int64_t>(r.rax);
  relive_test_call(fast_entry(0), 12345, addr(&ts), &r);  // no such clock: EINVAL, nothing written
  EXPECT_EQ(static_cast<int64_t>(r.rax), -EINVAL);
  std::vector<BufferedCall> calls = drain();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].nr, SYS_clock_gettime);
  EXPECT_EQ(calls[0].args[0], static_cast<uint64_t>(CLOCK_REALTIME));
  // rdx, r10, r8, r9 as relive_test_call set them: logged like a traced call's registers.
  EXPECT_EQ(calls[0].args[2], 0x3030303030303030u);
  EXPECT_EQ(calls[0].args[3], 0x4242424242424242u);
  EXPECT_EQ(calls[0].args[4], 0x4040404040404040u);
  EXPECT_EQ(calls[0].args[5], 0x4141414141414141u);
  EXPECT_EQ(calls[0].write_addr, addr(&ts));
  EXPECT_EQ(calls[0].write_data, std::string(reinterpret_cast<const char*>(&ts), sizeof ts));
  EXPECT_EQ(calls[1].nr, SYS_gettimeofday);
  EXPECT_EQ(calls[1].write_addr, addr(&tv));
  EXPECT_EQ(calls[1].write_data, std::string(reinterpret_cast<const char*>(&tv), sizeof tv));
  EXPECT_EQ(calls[2].nr, SYS_time);
  EXPECT_EQ(calls[2].result, now);
  EXPECT_EQ(calls[2].write_addr, 0u);
  EXPECT_EQ(calls[3].result, -EINVAL);
  EXPECT_EQ(calls[3].write_addr, 0u);
  EXPECT_EQ(header()->room, 96u);
}

// What the buffer says was written is what the syscall table says the call writes.
TEST_F(SyscallBufferTest, TheWrittenRangeIsTheSyscallTables) {
  reset(100);
  timespec ts{};
  timeval tv{};
  RegDump r{};
  relive_test_call(fast_entry(0), CLOCK_MONOTONIC, addr(&ts), &r);
  relive_test_call(fast_entry(1), addr(&tv), 0, &r);
  relive_test_call(fast_entry(2), 0, 0, &r);
  for (const BufferedCall& c : drain()) {
    auto ranges = out_ranges(Task(::getpid()), c.nr, c.args, c.result);
    ASSERT_TRUE(ranges.ok());
    if (c.write_addr == 0) {
      EXPECT_TRUE(ranges->empty()) << c.nr;
      continue;
    }
    ASSERT_EQ(ranges->size(), 1u) << c.nr;
    EXPECT_EQ((*ranges)[0].addr, c.write_addr);
    EXPECT_EQ((*ranges)[0].len, c.write_data.size());
  }
}

TEST_F(SyscallBufferTest, CallsTheFastPathDoesNotTakeAreTraced) {
  reset(100);
  timeval tv{};
  struct timezone tz {};
  time_t t = 0;
  RegDump r{};
  relive_test_call(fast_entry(1), addr(&tv), addr(&tz), &r);  // a time zone wanted
  EXPECT_EQ(r.rax, 0u);
  relive_test_call(fast_entry(1), 0, 0, &r);         // nothing wanted
  relive_test_call(fast_entry(2), addr(&t), 0, &r);  // time(&t)
  EXPECT_EQ(static_cast<time_t>(r.rax), t);
  EXPECT_EQ(header()->next, kFirstEntryAddr);
  EXPECT_EQ(header()->room, 100u);
}

TEST_F(SyscallBufferTest, AFullBufferSendsCallsDownTheTracedPath) {
  reset(1);
  timespec ts{};
  RegDump r{};
  relive_test_call(fast_entry(0), CLOCK_MONOTONIC, addr(&ts), &r);
  relive_test_call(fast_entry(0), CLOCK_MONOTONIC, addr(&ts), &r);
  EXPECT_EQ(r.rax, 0u);
  EXPECT_EQ(header()->room, 0u);
  EXPECT_EQ(drain().size(), 1u);
}

// A thread stopped inside a trampoline keeps its buffer (it may be about to store `next`): the
// recorder only moves `logged`, and the next drain returns just what came after.
TEST_F(SyscallBufferTest, WhatIsLoggedIsNotReturnedAgain) {
  reset(100);
  timespec ts{};
  RegDump r{};
  relive_test_call(fast_entry(0), CLOCK_MONOTONIC, addr(&ts), &r);
  relive_test_call(fast_entry(0), CLOCK_REALTIME, addr(&ts), &r);
  EXPECT_EQ(drain().size(), 2u);
  header()->logged = header()->next;
  EXPECT_TRUE(drain().empty());
  relive_test_call(fast_entry(0), CLOCK_BOOTTIME, addr(&ts), &r);
  std::vector<BufferedCall> calls = drain();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].args[0], static_cast<uint64_t>(CLOCK_BOOTTIME));
}

// Replay: the calls a recording logged through the fast path, prefilled into the buffer, are
// returned by the same trampolines without entering the kernel, leaving every register and the
// memory exactly as the recorded calls left them.
TEST_F(SyscallBufferTest, PrefilledCallsReplayWithEveryRegisterAsRecorded) {
  reset(10);
  timespec ts{};
  timeval tv{};
  RegDump rec[4]{}, rep[4]{};
  relive_test_call(fast_entry(0), CLOCK_REALTIME, addr(&ts), &rec[0]);
  relive_test_call(fast_entry(1), addr(&tv), 0, &rec[1]);
  relive_test_call(fast_entry(2), 0, 0, &rec[2]);
  relive_test_call(fast_entry(0), 12345, addr(&ts), &rec[3]);  // EINVAL: nothing written
  std::vector<BufferedCall> calls = drain();
  ASSERT_EQ(calls.size(), 4u);
  // Values no clock gives now, so that what the replayed calls return can only be the log's.
  const timespec ts_rec{1000000000, 1};
  const timeval tv_rec{1000000000, 2};
  calls[0].write_data.assign(reinterpret_cast<const char*>(&ts_rec), sizeof ts_rec);
  calls[1].write_data.assign(reinterpret_cast<const char*>(&tv_rec), sizeof tv_rec);
  calls[2].result = 1000000000;
  rec[2].rax = 1000000000;
  for (const BufferedCall& c : calls) EXPECT_TRUE(replayable_from_buffer(c));
  ASSERT_TRUE(prefill_syscall_buffer(Task(::getpid()), calls).ok());
  ts = {};
  tv = {};
  relive_test_call(fast_entry(0), CLOCK_REALTIME, addr(&ts), &rep[0]);
  EXPECT_EQ(std::memcmp(&ts, &ts_rec, sizeof ts), 0);
  relive_test_call(fast_entry(1), addr(&tv), 0, &rep[1]);
  EXPECT_EQ(std::memcmp(&tv, &tv_rec, sizeof tv), 0);
  relive_test_call(fast_entry(2), 0, 0, &rep[2]);
  ts = {};
  relive_test_call(fast_entry(0), 12345, addr(&ts), &rep[3]);
  EXPECT_EQ(ts.tv_sec, 0);  // the failed call wrote nothing
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rep[i], rec[i]) << "call " << i;
  auto taken = syscall_buffer_taken(Task(::getpid()), calls);
  ASSERT_TRUE(taken.ok()) << taken.status().to_string();
  EXPECT_EQ(*taken, 4u);
  EXPECT_EQ(header()->room, 0u);
  // All taken: the next call is a real (traced) one.
  RegDump r{};
  relive_test_call(fast_entry(0), CLOCK_REALTIME, addr(&ts), &r);
  EXPECT_EQ(r.rax, 0u);
  EXPECT_GT(ts.tv_sec, 1000000000);
}

// A call that is not the next prefilled one (another clock, another number, any other argument
// register) goes down the traced path and the entry stays, for the replayer to report.
TEST_F(SyscallBufferTest, APrefilledCallTheProgramDoesNotMakeIsNotTaken) {
  reset(10);
  timespec ts{};
  RegDump r{};
  relive_test_call(fast_entry(0), CLOCK_MONOTONIC, addr(&ts), &r);
  std::vector<BufferedCall> calls = drain();
  ASSERT_EQ(calls.size(), 1u);
  std::vector<std::vector<BufferedCall>> others(3, calls);
  others[1][0].args[3] ^= 1;   // r10 differs
  others[2][0].args[1] += 16;  // another pointer
  others[2][0].write_addr += 16;
  for (const auto& prefilled : others) {
    ASSERT_TRUE(prefill_syscall_buffer(Task(::getpid()), prefilled).ok());
    ts = {};
    // others[0]: the same entry, but the program asks for another clock.
    relive_test_call(fast_entry(0), &prefilled == &others[0] ? CLOCK_REALTIME : CLOCK_MONOTONIC,
                     addr(&ts), &r);
    EXPECT_EQ(r.rax, 0u);
    EXPECT_NE(ts.tv_sec, 0);  // the kernel's answer
    auto taken = syscall_buffer_taken(Task(::getpid()), prefilled);
    ASSERT_TRUE(taken.ok()) << taken.status().to_string();
    EXPECT_EQ(*taken, 0u) << "case " << &prefilled - &others[0];
    EXPECT_EQ(header()->room, 1u);
  }
  // A gettimeofday where the log has a clock_gettime.
  ASSERT_TRUE(prefill_syscall_buffer(Task(::getpid()), calls).ok());
  timeval tv{};
  relive_test_call(fast_entry(1), addr(&tv), 0, &r);
  EXPECT_EQ(*syscall_buffer_taken(Task(::getpid()), calls), 0u);
  // The recorder's own words, or a program that scribbled over them, are no replay buffer.
  header()->mode = 0;
  auto taken = syscall_buffer_taken(Task(::getpid()), calls);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), Status::Code::kCorruption);
}

TEST(SyscallBufferReplay, OnlyCallsInTheFastPathsFormsArePrefilled) {
  std::string sixteen(16, 'x');
  EXPECT_TRUE(replayable_from_buffer({SYS_clock_gettime, {1, 0x1000}, 0, 0x1000, sixteen}));
  EXPECT_TRUE(replayable_from_buffer({SYS_clock_gettime, {99, 0x1000}, -EINVAL, 0, ""}));
  EXPECT_TRUE(replayable_from_buffer({SYS_gettimeofday, {0x1000, 0}, 0, 0x1000, sixteen}));
  EXPECT_TRUE(replayable_from_buffer({SYS_time, {0}, 1700000000, 0, ""}));
  EXPECT_FALSE(replayable_from_buffer({SYS_read, {0, 0x1000, 10}, 0, 0, ""}));
  EXPECT_FALSE(replayable_from_buffer({SYS_clock_gettime, {1, 0x1000}, 0, 0x2000, sixteen}));
  EXPECT_FALSE(replayable_from_buffer({SYS_clock_gettime, {1, 0x1000}, 0, 0x1000, "short"}));
  EXPECT_FALSE(replayable_from_buffer({SYS_clock_gettime, {1, 0x1000}, 5, 0, ""}));
  EXPECT_FALSE(replayable_from_buffer({SYS_gettimeofday, {0x1000, 0x2000}, 0, 0x1000, sixteen}));
  EXPECT_FALSE(replayable_from_buffer({SYS_time, {0x1000}, 1700000000, 0x1000, sixteen}));
}

TEST(SyscallBufferLayout, OnlyTheFastTrampolinesAreInside) {
  EXPECT_FALSE(in_fast_trampoline(kTrampolineAddr));  // the traced ones
  EXPECT_FALSE(in_fast_trampoline(kTrampolineAddr + kFastTrampolineOffset - 1));
  EXPECT_TRUE(in_fast_trampoline(kTrampolineAddr + kFastTrampolineOffset));
  EXPECT_TRUE(in_fast_trampoline(kTrampolineAddr + kFastTrampolineEnd - 1));
  EXPECT_FALSE(in_fast_trampoline(kTrampolineAddr + kFastTrampolineEnd));
  // Every fast trampoline fits, and the buffer is right after the trampoline page.
  std::string page = trampoline_page();
  for (int i = 0; i < 3; ++i)
    EXPECT_NE(page[kFastTrampolineOffset + i * kFastTrampolineStride], '\xcc');
  EXPECT_EQ(kSyscallBufferAddr, kTrampolineAddr + kTrampolineSize);
}

TEST(SyscallBufferDecode, AnEmptyBufferHasNoCalls) {
  SyscallBufferHeader h{kFirstEntryAddr, kBufferCapacity, kFirstEntryAddr, {}};
  auto calls = decode_syscall_buffer(h, "");
  ASSERT_TRUE(calls.ok());
  EXPECT_TRUE(calls->empty());
}

TEST(SyscallBufferDecode, AHeaderNoTrampolineWroteIsRefused) {
  constexpr uint64_t kFirst = kFirstEntryAddr, kEntry = sizeof(SyscallBufferEntry);
  for (SyscallBufferHeader h :
       {SyscallBufferHeader{0, 5, kFirst, {}},           // next nowhere
        SyscallBufferHeader{kFirst + 7, 5, kFirst, {}},  // mid-entry
        SyscallBufferHeader{kSyscallBufferAddr + kSyscallBufferSize * 2, 0, kFirst, {}},
        SyscallBufferHeader{kFirst, kBufferCapacity + 1, kFirst, {}},  // too much room
        SyscallBufferHeader{kFirst, 5, kFirst + kEntry, {}},           // logged past next
        SyscallBufferHeader{kFirst + 2 * kEntry, 5, kFirst + 3, {}},   // logged mid-entry
        SyscallBufferHeader{kFirst + kEntry, 5, 0, {}}}) {             // logged nowhere
    auto calls = decode_syscall_buffer(h, "");
    ASSERT_FALSE(calls.ok());
    EXPECT_EQ(calls.status().code(), Status::Code::kCorruption);
    EXPECT_NE(calls.status().message().find("syscall buffer"), std::string::npos);
  }
}

TEST(SyscallBufferDecode, AnEntryNoTrampolineWroteIsRefused) {
  auto one = [](SyscallBufferEntry e) {
    SyscallBufferHeader h{kFirstEntryAddr + sizeof e, 0, kFirstEntryAddr, {}};
    return decode_syscall_buffer(h, std::string(reinterpret_cast<const char*>(&e), sizeof e));
  };
  EXPECT_TRUE(one({SYS_clock_gettime, {1, 0x1000}, 0, {}}).ok());
  EXPECT_FALSE(one({SYS_read, {0, 0x1000, 10}, 5, {}}).ok());           // 5 read, 0 bytes logged
  EXPECT_FALSE(one({~0ull, {}, 0, {}}).ok());                           // garbage
  EXPECT_FALSE(one({SYS_clock_gettime, {1, 0x1000}, 16, {}}).ok());     // not 0 or an error
  EXPECT_FALSE(one({SYS_gettimeofday, {0x1000, 0x2000}, 0, {}}).ok());  // a time zone
  EXPECT_FALSE(one({SYS_time, {0x1000}, 1700000000, {}}).ok());         // time(&t)
}

TEST(SyscallBufferDecode, EntriesShorterThanTheHeaderSaysAreRefused) {
  SyscallBufferEntry e{SYS_clock_gettime, {1, 0x1000}, 0, {}};
  SyscallBufferHeader h{kFirstEntryAddr + 2 * sizeof e, 0, kFirstEntryAddr, {}};
  auto calls = decode_syscall_buffer(h, std::string(reinterpret_cast<const char*>(&e), sizeof e));
  ASSERT_FALSE(calls.ok());
  EXPECT_EQ(calls.status().code(), Status::Code::kCorruption);
}

}  // namespace
// The byte calls of patched sites (fast_path.c, the host build) and the vDSO's clock calls share
// the buffer; the recorder decodes both, in order, whatever their sizes.
TEST_F(SyscallBufferTest, ByteCallsAndClockCallsDecodeInOrder) {
  int fd[2];
  ASSERT_EQ(::pipe2(fd, O_CLOEXEC), 0);
  ASSERT_EQ(::write(fd[1], "abc", 3), 3);
  reset(100);
  char buf[100] = {};
  relive_fp_frame r{};
  r.nr = SYS_read;
  r.args[0] = fd[0], r.args[1] = addr(buf), r.args[2] = sizeof buf;
  ASSERT_EQ(relive_fast_path(&r, reinterpret_cast<void*>(kSyscallBufferAddr)), RELIVE_FP_DONE);
  timespec ts{};
  RegDump regs{};
  relive_test_call(fast_entry(0), CLOCK_MONOTONIC, addr(&ts), &regs);
  std::string text(200, 'w');
  relive_fp_frame w{};
  w.nr = SYS_write;
  w.args[0] = fd[1], w.args[1] = addr(text.data()), w.args[2] = text.size();
  ASSERT_EQ(relive_fast_path(&w, reinterpret_cast<void*>(kSyscallBufferAddr)), RELIVE_FP_DONE);
  std::vector<BufferedCall> calls = drain();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].nr, SYS_read);
  EXPECT_EQ(calls[0].result, 3);
  EXPECT_EQ(calls[0].write_addr, addr(buf));
  EXPECT_EQ(calls[0].write_data, "abc");
  EXPECT_EQ(calls[1].nr, SYS_clock_gettime);
  EXPECT_EQ(calls[1].write_data.size(), 16u);
  EXPECT_EQ(calls[2].nr, SYS_write);
  EXPECT_EQ(calls[2].result, 200);
  EXPECT_EQ(calls[2].write_addr, 0u);
  EXPECT_EQ(calls[2].written, text);
  EXPECT_FALSE(calls[2].continued);
  // Entries of 1 + 1 + 4 slots (a 200-byte write: 72 + 200 bytes); the read took room for the
  // 100 bytes it asked for (3 slots) before it knew it would get 3, and gave back what its entry
  // did not use.
  EXPECT_EQ(header()->next - kFirstEntryAddr, 6 * sizeof(SyscallBufferEntry));
  EXPECT_EQ(header()->room, 100u - 6u);
  ::close(fd[0]);
  ::close(fd[1]);
}

// The entries of the other site calls are held to their rules as strictly: a stat that logged
// other than 144 bytes, an epoll_wait with more events than it asked for, an openat whose file
// identity is not 16 bytes, a writev over the entry limit, a call the fast path never takes.
TEST(SyscallBufferDecode, SiteCallEntriesAreHeldToTheirRules) {
  auto one = [](uint64_t nr, std::array<uint64_t, 6> args, int64_t result, uint64_t len) {
    uint64_t slots = (RELIVE_FP_DATA_OFFSET + (len > 4096 ? 0 : len) + 79) / 80;
    std::string bytes(slots * sizeof(SyscallBufferEntry), 'd');
    relive_fp_call c{nr, {}, result};
    std::copy(args.begin(), args.end(), c.args);
    std::memcpy(bytes.data(), &c, sizeof c);
    std::memcpy(bytes.data() + RELIVE_FP_CALL_BYTES, &len, sizeof len);
    SyscallBufferHeader h{kFirstEntryAddr + bytes.size(), 0, kFirstEntryAddr, {}};
    return decode_syscall_buffer(h, bytes);
  };
  auto stat = one(SYS_fstat, {3, 0x1000}, 0, 144);
  ASSERT_TRUE(stat.ok()) << stat.status().to_string();
  EXPECT_EQ((*stat)[0].write_addr, 0x1000u);
  EXPECT_EQ((*stat)[0].write_data.size(), 144u);
  auto opened = one(SYS_openat, {uint64_t(AT_FDCWD), 0x1000, 0}, 5, 16);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  EXPECT_EQ((*opened)[0].write_addr, 0u);  // an identity, not the program's memory
  EXPECT_EQ((*opened)[0].file_dev, 0x6464646464646464u);
  for (auto bad : {one(SYS_fstat, {3, 0x1000}, 0, 100),                     // not a struct stat
                   one(SYS_epoll_wait, {3, 0x1000, 1, 0}, 2, 24),           // 2 of 1 events
                   one(SYS_openat, {uint64_t(AT_FDCWD), 0x1000, 0}, 5, 8),  // half an identity
                   one(SYS_writev, {3, 0x1000, 2}, 1 << 20, 1 << 20),       // over the entry limit
                   one(SYS_getpgrp, {}, 7, 0)}) {                           // not the fast path's
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
    EXPECT_NE(bad.status().message().find("syscall buffer"), std::string::npos);
  }
}

TEST(SyscallBufferDecode, AByteCallEntryTheFastPathCouldNotWriteIsRefused) {
  // One byte-call entry of `len` logged bytes in `slots` slots.
  auto one = [](uint64_t nr, uint64_t count, int64_t result, uint64_t len_word, uint64_t len,
                uint64_t slots) {
    std::string bytes(slots * sizeof(SyscallBufferEntry), 'd');
    relive_fp_call c{nr, {3, 0x1000, count}, result};
    std::memcpy(bytes.data(), &c, sizeof c);
    std::memcpy(bytes.data() + RELIVE_FP_CALL_BYTES, &len_word, sizeof len_word);
    (void)len;
    SyscallBufferHeader h{kFirstEntryAddr + bytes.size(), 0, kFirstEntryAddr, {}};
    return decode_syscall_buffer(h, bytes);
  };
  auto ok = one(SYS_read, 100, 8, 8, 8, 1);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ((*ok)[0].write_data, "dddddddd");
  EXPECT_TRUE(one(SYS_write, 100, 40, 40 | RELIVE_FP_CONTINUED, 40, 2).ok());
  EXPECT_TRUE(one(SYS_read, 100, -EBADF, 0, 0, 1).ok());
  EXPECT_FALSE(one(SYS_read, 100, 9, 8, 8, 1).ok());  // result is not what was logged
  EXPECT_FALSE(one(SYS_read, 4, 8, 8, 8, 1).ok());    // more than was asked for
  EXPECT_FALSE(one(SYS_read, 100, 8, 8 | RELIVE_FP_CONTINUED, 8, 1).ok());     // a continued read
  EXPECT_FALSE(one(SYS_write, 40, 40, 40 | RELIVE_FP_CONTINUED, 40, 2).ok());  // nothing left
  EXPECT_FALSE(one(SYS_read, 100, 90, 90, 90, 1).ok());          // data past the last slot
  EXPECT_FALSE(one(SYS_read, ~0ull, 5, ~0ull >> 1, 0, 1).ok());  // an absurd length
  EXPECT_FALSE(one(SYS_read, 100, -EBADF, 3, 3, 1).ok());        // bytes with an error
}

// Replay of byte calls: the replayer prefills a read (with its logged bytes), a clock call and a
// continued write; the fast path answers them in order; the replayer then finds every call taken
// and reads back the bytes the write left in its entry.
TEST_F(SyscallBufferTest, PrefilledByteCallsReplayInOrder) {
  char buf[32] = {};
  std::string text = "written by the program";
  timespec ts_rec{1000000000, 3};
  std::vector<BufferedCall> calls(3);
  calls[0] = {SYS_read, {7, addr(buf), sizeof buf}, 5, addr(buf), "bytes"};
  calls[2] = {SYS_write, {8, addr(text.data()), text.size()}, 7, 0, {}};
  calls[2].continued = true;
  // The clock call as the harness makes it (its registers all count), with a logged value no
  // clock gives now.
  timespec ts{};
  RegDump regs{};
  reset(10);
  relive_test_call(fast_entry(0), 1, addr(&ts), &regs);
  std::vector<BufferedCall> recorded = drain();
  ASSERT_EQ(recorded.size(), 1u);
  calls[1] = recorded[0];
  calls[1].write_data.assign(reinterpret_cast<const char*>(&ts_rec), sizeof ts_rec);
  EXPECT_TRUE(replayable_site_call(calls[0]));
  EXPECT_TRUE(replayable_from_buffer(calls[1]));
  EXPECT_TRUE(replayable_site_call(calls[2]));
  ASSERT_TRUE(prefill_syscall_buffer(Task(::getpid()), calls).ok());
  auto* buffer = reinterpret_cast<void*>(kSyscallBufferAddr);
  relive_fp_frame r{SYS_read, {7, addr(buf), sizeof buf}, 0, 0};
  ASSERT_EQ(relive_fast_path(&r, buffer), RELIVE_FP_DONE);
  EXPECT_EQ(r.result, 5);
  EXPECT_EQ(std::string(buf, 5), "bytes");
  EXPECT_EQ(*syscall_buffer_taken(Task(::getpid()), calls), 1u);
  ts = {};
  relive_test_call(fast_entry(0), 1, addr(&ts), &regs);
  EXPECT_EQ(std::memcmp(&ts, &ts_rec, sizeof ts), 0);
  relive_fp_frame w{SYS_write, {8, addr(text.data()), text.size()}, 0, 0};
  ASSERT_EQ(relive_fast_path(&w, buffer), RELIVE_FP_CONTINUE);
  EXPECT_EQ(w.partial, 7u);
  EXPECT_EQ(*syscall_buffer_taken(Task(::getpid()), calls), 3u);
  auto bytes = replayed_write_bytes(Task(::getpid()), calls, 0, 3);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  ASSERT_EQ(bytes->size(), 3u);
  EXPECT_EQ((*bytes)[0], "");  // the read and the clock call wrote nothing out
  EXPECT_EQ((*bytes)[1], "");
  EXPECT_EQ((*bytes)[2], text.substr(0, 7));
  // Passing over an entry the replayer answered itself lands on the next one's slots.
  ASSERT_TRUE(prefill_syscall_buffer(Task(::getpid()), calls).ok());
  ASSERT_TRUE(pass_syscall_buffer_entry(Task(::getpid()), 0, calls).ok());
  EXPECT_EQ(*syscall_buffer_taken(Task(::getpid()), calls), 1u);
  relive_test_call(fast_entry(0), 1, addr(&ts), &regs);
  EXPECT_EQ(*syscall_buffer_taken(Task(::getpid()), calls), 2u);
}

TEST(SyscallBufferReplay, SiteCallsTheFastPathCannotAnswerAreNotReplayable) {
  uint64_t b = 0x1000;
  EXPECT_TRUE(replayable_site_call({SYS_read, {3, b, 10}, 4, b, "abcd"}));
  EXPECT_TRUE(replayable_site_call({SYS_read, {3, b, 10}, 0, 0, ""}));
  EXPECT_TRUE(replayable_site_call({SYS_pwrite64, {3, b, 10, 5}, 10, 0, ""}));
  EXPECT_TRUE(replayable_site_call({SYS_read, {3, b, 10}, -EINTR, 0, ""}));
  EXPECT_FALSE(replayable_site_call({SYS_read, {3, b, 10}, 4, b, "abc"}));       // bytes != result
  EXPECT_FALSE(replayable_site_call({SYS_read, {3, b, 10}, 4, b + 1, "abcd"}));  // elsewhere
  EXPECT_FALSE(replayable_site_call({SYS_read, {3, b, 2}, 4, b, "abcd"}));       // more than asked
  EXPECT_FALSE(replayable_site_call({SYS_write, {3, b, 10}, 4, b, "abcd"}));  // a write that read
  EXPECT_TRUE(replayable_site_call({SYS_getpid, {}, 4, 0, ""}));
  EXPECT_FALSE(replayable_site_call({SYS_getpid, {}, 4, b, "abcd"}));  // a getpid that wrote
  EXPECT_FALSE(replayable_site_call({SYS_getpgrp, {}, 4, 0, ""}));     // not the fast path's
  std::string stat_bytes(144, 's');
  EXPECT_TRUE(replayable_site_call({SYS_fstat, {3, b}, 0, b, stat_bytes}));
  EXPECT_FALSE(replayable_site_call({SYS_fstat, {3, b}, 0, b, "short"}));
  EXPECT_TRUE(replayable_site_call({SYS_fstat, {3, b}, -EBADF, 0, ""}));
  EXPECT_TRUE(replayable_site_call({SYS_epoll_wait, {3, b, 8, 0}, 2, b, std::string(24, 'e')}));
  EXPECT_FALSE(replayable_site_call({SYS_epoll_wait, {3, b, 1, 0}, 2, b, std::string(24, 'e')}));
  EXPECT_TRUE(replayable_site_call({SYS_poll, {b, 2, 0}, 1, b, std::string(16, 'p')}));
  EXPECT_FALSE(replayable_site_call({SYS_recvfrom, {3, b, 10, 0, b, b}, 4, b, "abcd"}));
  EXPECT_TRUE(replayable_site_call({SYS_sendto, {3, b, 10, 0, 0, 0}, 10, 0, ""}));
  EXPECT_FALSE(replayable_site_call({SYS_ioctl, {3, 0x5401, b}, 0, b, "abcd"}));  // TCGETS
  BufferedCall whole{SYS_write, {3, b, 10}, 10, 0, ""};
  whole.continued = true;  // continued with nothing left
  EXPECT_FALSE(replayable_site_call(whole));
}

// A readv's entry: the parts of its iovecs it filled, then their bytes. Parts that do not add up
// to its result, or that name no address, are not the fast path's.
TEST(SyscallBufferDecode, AReadvEntryGivesThePartsItFilled) {
  auto one = [](std::vector<uint64_t> parts, int64_t result, const std::string& bytes) {
    uint64_t count = parts.size() / 2;
    std::string data(reinterpret_cast<const char*>(parts.data()), parts.size() * 8);
    data += bytes;
    uint64_t len = data.size();
    std::string entry(((RELIVE_FP_DATA_OFFSET + len + 79) / 80) * 80, '\0');
    relive_fp_call c{SYS_readv, {3, 0x1000, count}, result};
    std::memcpy(entry.data(), &c, sizeof c);
    std::memcpy(entry.data() + RELIVE_FP_CALL_BYTES, &len, sizeof len);
    std::memcpy(entry.data() + RELIVE_FP_DATA_OFFSET, data.data(), data.size());
    SyscallBufferHeader h{kFirstEntryAddr + entry.size(), 0, kFirstEntryAddr, {}};
    return decode_syscall_buffer(h, entry);
  };
  auto ok = one({0x2000, 3, 0x3000, 2, 0x4000, 0}, 5, "abcde");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  ASSERT_EQ((*ok)[0].scattered.size(), 2u);
  EXPECT_EQ((*ok)[0].scattered[0], std::make_pair(uint64_t{0x2000}, std::string("abc")));
  EXPECT_EQ((*ok)[0].scattered[1], std::make_pair(uint64_t{0x3000}, std::string("de")));
  EXPECT_EQ((*ok)[0].write_addr, 0u);
  for (auto bad : {one({0x2000, 3, 0x3000, 3}, 5, "abcde"),     // parts past its bytes
                   one({0x2000, 3, 0x3000, 1}, 5, "abcde"),     // parts short of them
                   one({0, 3, 0x3000, 2}, 5, "abcde"),          // a part at no address
                   one({0x2000, 3, 0x3000, 2}, 6, "abcde")}) {  // a result not logged
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
  }
  BufferedCall c{SYS_readv, {3, 0x1000, 2}, 5};
  c.scattered = {{0x2000, "abc"}, {0x3000, "de"}};
  EXPECT_TRUE(replayable_site_call(c));
  c.scattered[1].second = "d";  // parts that do not add up to the result
  EXPECT_FALSE(replayable_site_call(c));
  c.scattered = {{0x2000, "a"}, {0x2001, "b"}, {0x2002, "cde"}};  // more parts than iovecs
  EXPECT_FALSE(replayable_site_call(c));
}

// A recvmsg's entry: its msghdr first, then the sender's address and the filled iovecs.
TEST(SyscallBufferDecode, ARecvmsgEntryGivesItsMsghdrAddressAndBytes) {
  auto one = [](std::vector<uint64_t> parts, int64_t result, const std::string& bytes) {
    parts.resize(2 * RELIVE_FP_MSG_PARTS, 0);
    std::string data(reinterpret_cast<const char*>(parts.data()), parts.size() * 8);
    data += bytes;
    uint64_t len = data.size();
    std::string entry(((RELIVE_FP_DATA_OFFSET + len + 79) / 80) * 80, '\0');
    relive_fp_call c{SYS_recvmsg, {3, 0x1000, 0}, result};
    std::memcpy(entry.data(), &c, sizeof c);
    std::memcpy(entry.data() + RELIVE_FP_CALL_BYTES, &len, sizeof len);
    std::memcpy(entry.data() + RELIVE_FP_DATA_OFFSET, data.data(), data.size());
    SyscallBufferHeader h{kFirstEntryAddr + entry.size(), 0, kFirstEntryAddr, {}};
    return decode_syscall_buffer(h, entry);
  };
  std::string hdr(56, 'h');
  auto ok = one({0x1000, 56, 0x5000, 2, 0x2000, 4}, 4, hdr + "nm" + "data");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  ASSERT_EQ((*ok)[0].scattered.size(), 3u);
  EXPECT_EQ((*ok)[0].scattered[0], std::make_pair(uint64_t{0x1000}, hdr));
  EXPECT_EQ((*ok)[0].scattered[1], std::make_pair(uint64_t{0x5000}, std::string("nm")));
  EXPECT_EQ((*ok)[0].scattered[2], std::make_pair(uint64_t{0x2000}, std::string("data")));
  EXPECT_TRUE(replayable_site_call((*ok)[0]));
  for (auto bad : {one({0x1800, 56, 0x2000, 4}, 4, hdr + "data"),  // not its msghdr
                   one({0x1000, 50, 0x2000, 4}, 4, std::string(50, 'h') + "data"),
                   one({0x1000, 56, 0x2000, 4}, 9, hdr + "data"),  // bytes short of the result
                   one({0x1000, 56, 0x5000, 200, 0x2000, 4}, 4,    // an address over 128 bytes
                       hdr + std::string(200, 'n') + "data")}) {
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
  }
}

}  // namespace relive::tracee
