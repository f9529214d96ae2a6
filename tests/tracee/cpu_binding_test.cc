#include "tracee/cpu_binding.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace relive::tracee {
namespace {

int cpus_in(const cpu_set_t& set) { return CPU_COUNT(&set); }

cpu_set_t mask_of(pid_t tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(::sched_getaffinity(tid, sizeof set, &set), 0);
  return set;
}

bool same(const cpu_set_t& a, const cpu_set_t& b) { return CPU_EQUAL(&a, &b); }

TEST(CpuChoice, ParsesAnyNoneAndNumbers) {
  EXPECT_EQ(*parse_cpu_choice("any"), kAnyCpu);
  EXPECT_EQ(*parse_cpu_choice("none"), kNoCpu);
  EXPECT_EQ(*parse_cpu_choice("0"), 0);
  EXPECT_EQ(*parse_cpu_choice("3"), 3);
  for (const char* bad : {"", "-1", "1x", "all", "99999"})
    EXPECT_FALSE(parse_cpu_choice(bad).ok()) << bad;
}

TEST(CpuBinding, BindsTheCallerToOneAllowedCpuAndGivesItsMaskBack) {
  cpu_set_t before = mask_of(0);
  {
    Result<CpuBinding> b = CpuBinding::bind_caller(kAnyCpu);
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    ASSERT_GE(b->cpu(), 0);
    EXPECT_TRUE(CPU_ISSET(b->cpu(), &before));
    cpu_set_t now = mask_of(0);
    EXPECT_EQ(cpus_in(now), 1);
    EXPECT_TRUE(CPU_ISSET(b->cpu(), &now));
  }
  EXPECT_TRUE(same(mask_of(0), before));
}

TEST(CpuBinding, NoneBindsNothingAndAForbiddenCpuIsAnError) {
  cpu_set_t before = mask_of(0);
  Result<CpuBinding> none = CpuBinding::bind_caller(kNoCpu);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->cpu(), -1);
  EXPECT_TRUE(same(mask_of(0), before));
  int forbidden = -1;
  for (int c = 0; c < CPU_SETSIZE && forbidden < 0; ++c)
    if (!CPU_ISSET(c, &before)) forbidden = c;
  ASSERT_GE(forbidden, 0);
  EXPECT_FALSE(CpuBinding::bind_caller(forbidden).ok());
  EXPECT_TRUE(same(mask_of(0), before));
}

// A process's threads are bound, a thread it starts afterwards inherits the binding, and at the
// end every thread has its process's own mask again.
TEST(CpuBinding, BindsEveryThreadOfAProcessAndRestoresThemAll) {
  cpu_set_t before = mask_of(0);
  if (cpus_in(before) < 2) GTEST_SKIP() << "needs two CPUs to tell a binding from none";
  int to_child[2], from_child[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(from_child), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(to_child[1]);
    // Two threads now; on "t" a third; on EOF exit. Reports each thread's id.
    std::atomic<bool> stop{false};
    auto park = [&] {
      pid_t tid = static_cast<pid_t>(::gettid());
      (void)!::write(from_child[1], &tid, sizeof tid);
      while (!stop) ::usleep(1000);
    };
    std::thread first(park);
    char c;
    std::thread second;
    while (::read(to_child[0], &c, 1) == 1) second = std::thread(park);
    stop = true;
    first.join();
    if (second.joinable()) second.join();
    ::_exit(0);
  }
  pid_t t1 = 0;
  ASSERT_EQ(::read(from_child[0], &t1, sizeof t1), static_cast<ssize_t>(sizeof t1));
  {
    Result<CpuBinding> b = CpuBinding::bind_caller(kAnyCpu);
    ASSERT_TRUE(b.ok());
    b->bind_process(pid);
    EXPECT_EQ(cpus_in(mask_of(pid)), 1);
    EXPECT_EQ(cpus_in(mask_of(t1)), 1);
    ASSERT_EQ(::write(to_child[1], "t", 1), 1);  // started by a bound thread: bound too
    pid_t t2 = 0;
    ASSERT_EQ(::read(from_child[0], &t2, sizeof t2), static_cast<ssize_t>(sizeof t2));
    EXPECT_EQ(cpus_in(mask_of(t2)), 1);
    b->restore();
    EXPECT_TRUE(same(mask_of(pid), before));
    EXPECT_TRUE(same(mask_of(t1), before));
    EXPECT_TRUE(same(mask_of(t2), before));
    EXPECT_TRUE(same(mask_of(0), before));
  }
  ::close(to_child[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
}

}  // namespace
}  // namespace relive::tracee
