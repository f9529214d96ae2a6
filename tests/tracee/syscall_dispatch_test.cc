// Syscall user dispatch, as a recorder attached to a running process uses it: calls made outside
// relive's range stop the tracer (SIGSYS), are made again let through, and stop at their entry;
// turned off, the process runs free; with the tracer gone and dispatch still on, the blob's SIGSYS
// handler lets the process carry on, and a SIGSYS that is not dispatch's still kills it.
#include "tracee/syscall_dispatch.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "tracee/inject.h"

namespace relive::tracee {
namespace {

using std::chrono::seconds;

bool map_at(uint64_t addr, uint64_t size, int prot) {
  void* p = ::mmap(reinterpret_cast<void*>(addr), size, prot,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  return p == reinterpret_cast<void*>(addr);
}

// A child with relive's pages where a recorder puts them (scratch, a `syscall` at
// kTrampolineSyscallInsn, the syscall buffer, the blob) counting getppid calls in `*count`.
pid_t start_child(std::atomic<uint64_t>* count) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (!map_at(kScratchAddr, kScratchSize, PROT_READ | PROT_WRITE) ||
      !map_at(kTrampolineAddr, kTrampolineSize, PROT_READ | PROT_WRITE | PROT_EXEC) ||
      !map_at(kSyscallBufferAddr, kSyscallBufferSize, PROT_READ | PROT_WRITE) ||
      !map_at(kFastPathBlobAddr, kFastPathBlobSize, PROT_READ | PROT_WRITE | PROT_EXEC))
    ::_exit(99);
  const unsigned char syscall_insn[] = {0x0f, 0x05, 0xcc};
  std::memcpy(reinterpret_cast<void*>(kTrampolineSyscallInsn), syscall_insn, sizeof syscall_insn);
  std::memcpy(reinterpret_cast<void*>(kFastPathBlobAddr), fast_path_blob_bytes().data(),
              fast_path_blob_bytes().size());
  for (;;) {
    count->fetch_add(1);
    (void)::syscall(SYS_getppid);
  }
}

int wait_status(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, __WALL) == pid ? status : -1;
}

// Seizes `pid` and brings it to a group stop.
bool seize(pid_t pid) {
  if (::ptrace(PTRACE_SEIZE, pid, nullptr, PTRACE_O_TRACESYSGOOD) != 0) return false;
  if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) return false;
  for (int i = 0; i < 100; ++i) {
    int status = wait_status(pid);
    if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP) return true;
    if (::ptrace(PTRACE_CONT, pid, nullptr, nullptr) != 0) return false;
  }
  return false;
}

// Whether `pid` has a handler for SIGSYS (its SigCgt mask in /proc).
bool catches_sigsys(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string l; std::getline(in, l);)
    if (l.rfind("SigCgt:", 0) == 0)
      return (std::stoull(l.substr(7), nullptr, 16) >> (SIGSYS - 1)) & 1;
  return false;
}

bool counts_on(std::atomic<uint64_t>* count) {
  uint64_t before = count->load();
  auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (count->load() < before + 1000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return count->load() >= before + 1000;
}

// A counting child, seized, with dispatch on.
struct Fixture {
  std::atomic<uint64_t>* count = static_cast<std::atomic<uint64_t>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  pid_t child = 0;
  std::vector<int> held;
  void start() {
    child = start_child(count);
    ASSERT_TRUE(counts_on(count)) << "the child did not start";
    ASSERT_TRUE(seize(child));
    Status on = enable_syscall_dispatch(Task(child), Injector::At::kElsewhere,
                                        kTrampolineSyscallInsn, &held);
    ASSERT_TRUE(on.ok()) << on.to_string();
  }
  ~Fixture() {
    if (child > 0) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, __WALL);
    }
  }
};

TEST(SyscallDispatch, CallsStopAndAreMadeAgainLetThroughAndRunFreeOnceItIsOff) {
  Fixture f;
  f.start();
  ASSERT_FALSE(HasFailure());
  Task task(f.child);
  std::vector<int>& held = f.held;

  for (int call = 0; call < 3; ++call) {
    ASSERT_EQ(::ptrace(PTRACE_CONT, f.child, nullptr, nullptr), 0);
    int status = wait_status(f.child);
    ASSERT_TRUE(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSYS) << std::hex << status;
    std::string info;
    ASSERT_TRUE(task.get_siginfo(&info).ok());
    ASSERT_TRUE(is_dispatched_syscall(info));
    EXPECT_EQ(task.regs().orig_rax, static_cast<uint64_t>(SYS_getppid));
    const uint64_t past_call = task.regs().rip;
    Result<uint64_t> return_to = reissue_dispatched_syscall(task);
    ASSERT_TRUE(return_to.ok()) << return_to.status().to_string();
    EXPECT_EQ(*return_to, past_call);
    uint64_t rip = task.regs().rip;
    EXPECT_TRUE(rip >= kDispatchAllowedStart && rip < kDispatchAllowedEnd) << std::hex << rip;
    unsigned char selector = 0;
    ASSERT_TRUE(task.read_mem(kDispatchSelectorAddr, &selector, 1).ok());
    EXPECT_EQ(selector, kSelectorBlock) << "the selector every thread shares was lifted";
    ASSERT_EQ(::ptrace(PTRACE_SYSCALL, f.child, nullptr, nullptr), 0);  // the SIGSYS dropped
    status = wait_status(f.child);
    ASSERT_TRUE(WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80)) << std::hex << status;
    EXPECT_EQ(task.regs().orig_rax, static_cast<uint64_t>(SYS_getppid));  // its entry
    ASSERT_TRUE(return_reissued_syscall(task, *return_to).ok());
    ASSERT_EQ(::ptrace(PTRACE_SYSCALL, f.child, nullptr, nullptr), 0);
    status = wait_status(f.child);
    ASSERT_TRUE(WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80)) << std::hex << status;
    EXPECT_EQ(task.regs().rax, static_cast<uint64_t>(::getpid())) << "getppid was not made";
    EXPECT_EQ(task.regs().rip, past_call) << "the call does not return to the program";
    EXPECT_EQ(task.regs().rcx, past_call) << "rcx is not as the program's syscall leaves it";
  }

  // At the last call's exit: off, and the selector set to "block" behind its back changes
  // nothing.
  Status off = disable_syscall_dispatch(task, Injector::At::kExit, kTrampolineSyscallInsn, &held);
  ASSERT_TRUE(off.ok()) << off.to_string();
  EXPECT_TRUE(held.empty());
  EXPECT_FALSE(catches_sigsys(f.child)) << "the SIGSYS handler was left behind";
  ASSERT_TRUE(task.write_mem(kDispatchSelectorAddr, &kSelectorBlock, 1).ok());
  ASSERT_EQ(::ptrace(PTRACE_DETACH, f.child, nullptr, nullptr), 0);
  EXPECT_TRUE(counts_on(f.count)) << "the child stopped counting";
  EXPECT_EQ(::waitpid(f.child, nullptr, WNOHANG | __WALL), 0) << "the child died";
}

TEST(SyscallDispatch, WithTheTracerGoneTheSafetyNetLetsCallsThroughAndOtherSigsysStillKills) {
  Fixture f;
  f.start();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(catches_sigsys(f.child)) << "enable installed no SIGSYS handler";
  ASSERT_EQ(::ptrace(PTRACE_DETACH, f.child, nullptr, nullptr), 0);  // dispatch on, no tracer
  EXPECT_TRUE(counts_on(f.count)) << "the child stopped counting";
  ASSERT_EQ(::waitpid(f.child, nullptr, WNOHANG | __WALL), 0) << "the child died";

  ASSERT_EQ(::kill(f.child, SIGSYS), 0);
  int status = wait_status(f.child);
  f.child = 0;
  ASSERT_TRUE(WIFSIGNALED(status)) << std::hex << status;
  EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

}  // namespace
}  // namespace relive::tracee
