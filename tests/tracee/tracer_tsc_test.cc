#include "tracee/tracer_tsc.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <x86intrin.h>

#include <csignal>
#include <ctime>

namespace relive::tracee {
namespace {

int tsc_mode() {
  int mode = 0;
  EXPECT_EQ(::prctl(PR_GET_TSC, &mode, 0, 0, 0), 0);
  return mode;
}

// With the guard, the thread's rdtsc is disabled, yet every way this thread reads the TSC or a
// clock still works: the guard's own reads, a bare rdtsc/rdtscp (stepped over by the handler),
// a vDSO clock read, and the kernel clock.
TEST(TracerTsc, ReadsStillWorkWhileTheThreadsRdtscIsDisabled) {
  uint64_t before = __rdtsc();
  {
    TracerTscGuard guard;
    ASSERT_TRUE(guard.active());
    EXPECT_EQ(tsc_mode(), PR_TSC_SIGSEGV);
    uint64_t a = tracer_rdtsc();
    uint64_t b = __rdtsc();  // faults; the handler supplies the value
    unsigned aux = 0;
    uint64_t c = __rdtscp(&aux);
    uint32_t aux2 = 0;
    uint64_t d = tracer_rdtscp(&aux2);
    EXPECT_LT(before, a);
    EXPECT_LE(a, b);
    EXPECT_LE(b, c);
    EXPECT_LE(c, d);
    timespec t1{}, t2{};
    ::clock_gettime(CLOCK_MONOTONIC, &t1);  // the vDSO (rdtsc inside)
    auto k = kernel_steady_now();
    ::clock_gettime(CLOCK_MONOTONIC, &t2);
    auto ns = [](const timespec& t) { return t.tv_sec * 1000000000LL + t.tv_nsec; };
    int64_t kns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(k.time_since_epoch()).count();
    EXPECT_LE(ns(t1), kns);
    EXPECT_LE(kns, ns(t2));
  }
  EXPECT_EQ(tsc_mode(), PR_TSC_ENABLE);
}

TEST(TracerTsc, NestedGuardsLeaveItToTheOuterOne) {
  TracerTscGuard outer;
  ASSERT_TRUE(outer.active());
  {
    TracerTscGuard inner;
    EXPECT_FALSE(inner.active());
  }
  EXPECT_EQ(tsc_mode(), PR_TSC_SIGSEGV);
}

// Any other fault still kills the thread's process, as without the handler.
TEST(TracerTscDeathTest, OtherFaultsStillCrash) {
  EXPECT_EXIT(
      {
        TracerTscGuard guard;
        volatile int* p = nullptr;
        *p = 1;
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

}  // namespace
}  // namespace relive::tracee
