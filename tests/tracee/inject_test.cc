// Injecting system calls into a stopped process: a call a signal interrupts before it did
// anything is made again, as the kernel restarts it, with the signal held for the caller.
#include "tracee/inject.h"

#include <gtest/gtest.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>

namespace relive::tracee {
namespace {

void on_usr1(int) {}

// The first number of /proc/<pid>/syscall: the call the process is blocked in.
long blocked_in(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/syscall");
  long nr = -2;
  in >> nr;
  return nr;
}

// Seizes `pid` and stops it at the entry of one of its own system calls.
bool stop_at_entry(pid_t pid) {
  if (::ptrace(PTRACE_SEIZE, pid, nullptr, PTRACE_O_TRACESYSGOOD) != 0) return false;
  if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) return false;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return false;
  for (int i = 0; i < 1000; ++i) {
    if (::ptrace(PTRACE_SYSCALL, pid, nullptr, nullptr) != 0) return false;
    if (::waitpid(pid, &status, 0) != pid) return false;
    if (WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80)) return true;
  }
  return false;
}

}  // namespace

// A futex wait injected into a process blocks; the word changes (no wake) and a signal arrives.
// The wait comes back with ERESTARTSYS; made again, it finds the word changed: EAGAIN. The signal
// is held, not lost and not delivered into the injected call.
TEST(Injector, ACallASignalInterruptsIsMadeAgainWithTheSignalHeld) {
  auto* word = static_cast<std::atomic<uint32_t>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(word, MAP_FAILED);
  word->store(0);
  pid_t child = ::fork();
  if (child == 0) {
    struct sigaction sa {};
    sa.sa_handler = on_usr1;
    ::sigaction(SIGUSR1, &sa, nullptr);
    for (;;) (void)::syscall(SYS_getppid);
  }
  ASSERT_GT(child, 0);
  ASSERT_TRUE(stop_at_entry(child));
  Task task(child);
  Injector inj(task, Injector::At::kEntry, 0);
  std::thread interrupter([&] {
    for (int i = 0; i < 20000 && blocked_in(child) != SYS_futex; ++i) ::usleep(500);
    word->store(1);  // no wake: only a wait made again sees it
    ::kill(child, SIGUSR1);
  });
  Result<int64_t> got = inj.call(SYS_futex, {reinterpret_cast<uint64_t>(word), FUTEX_WAIT, 0, 0});
  interrupter.join();
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, -EAGAIN);
  ASSERT_EQ(inj.held_signals().size(), 1u);
  EXPECT_EQ(inj.held_signals()[0], SIGUSR1);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::munmap(word, 4096);
}

}  // namespace relive::tracee
