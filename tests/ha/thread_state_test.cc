#include "ha/thread_state.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace relive::ha {
namespace {

FastState sample() {
  FastState s;
  for (int i = 0; i < 3; ++i) {
    ThreadState t;
    t.pid = 7;
    t.tid = 7 + i;
    t.regs.rip = 0x401000 + i;
    t.regs.rsp = 0x7ffd0000 - i;
    t.regs.orig_rax = static_cast<uint64_t>(-1);
    t.sigmask = 1ull << (10 + i);
    t.xstate = std::string(832 + i, static_cast<char>('a' + i));
    s.threads.push_back(t);
  }
  s.offsets = {{7, 3, 4096}, {7, 9, 0}, {8, 4, 1ll << 40}};
  return s;
}

TEST(ThreadState, RoundTrips) {
  FastState s = sample();
  Result<FastState> back = decode_fast_state(encode_fast_state(s));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(back->threads.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back->threads[i].tid, s.threads[i].tid);
    EXPECT_EQ(std::memcmp(&back->threads[i].regs, &s.threads[i].regs, sizeof(tracee::Regs)), 0);
    EXPECT_EQ(back->threads[i].sigmask, s.threads[i].sigmask);
    EXPECT_EQ(back->threads[i].xstate, s.threads[i].xstate);
  }
  ASSERT_EQ(back->offsets.size(), 3u);
  EXPECT_EQ(back->offsets[2].pos, 1ll << 40);
  EXPECT_EQ(back->offsets[1].fd, 9);
}

TEST(ThreadState, EveryTruncationAndCorruptionIsRefused) {
  std::string good = encode_fast_state(sample());
  for (size_t n = 0; n < good.size(); n += 7) {
    EXPECT_FALSE(decode_fast_state(good.substr(0, n)).ok()) << "truncated at " << n;
  }
  EXPECT_FALSE(decode_fast_state(good + "x").ok());
  std::string magic = good;
  magic[0] = 'X';
  EXPECT_FALSE(decode_fast_state(magic).ok());
  std::string huge = good;
  uint32_t n = 0xffffffff;
  std::memcpy(huge.data() + 8, &n, 4);  // the thread count
  EXPECT_FALSE(decode_fast_state(huge).ok());
  FastState zero_tid = sample();
  zero_tid.threads[1].tid = 0;
  EXPECT_FALSE(decode_fast_state(encode_fast_state(zero_tid)).ok());
}

// A thread's state read from one stop and given back at another: the child, stopped mid-loop,
// is moved to a different signal mask and register value, which it reports when it runs on.
TEST(ThreadState, CaptureAndApplyOnALiveProcess) {
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(out[0]);
    for (;;) {
      sigset_t cur;
      sigprocmask(SIG_SETMASK, nullptr, &cur);
      if (sigismember(&cur, SIGUSR2)) {
        (void)!::write(out[1], "blocked", 7);
        _exit(0);
      }
      ::usleep(1000);
    }
  }
  ::close(out[1]);
  {
    Result<uint64_t> insn = dirty::find_syscall_insn(child);
    ASSERT_TRUE(insn.ok()) << insn.status().to_string();
    Result<dirty::SeizedThread> t = dirty::SeizedThread::seize_thread(child, child, *insn);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    Result<ThreadState> s = capture_thread(*t, 1, 1);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    EXPECT_GE(s->xstate.size(), 512u);  // at least the legacy FXSAVE area
    EXPECT_EQ(s->sigmask & (1ull << (SIGUSR2 - 1)), 0u);
    ThreadState changed = *s;
    changed.sigmask |= 1ull << (SIGUSR2 - 1);
    ASSERT_TRUE(apply_thread(&*t, changed).ok());
    ASSERT_TRUE(t->release().ok());
  }
  char buf[16] = {0};
  ASSERT_EQ(::read(out[0], buf, sizeof buf), 7);
  EXPECT_STREQ(buf, "blocked");
  int st = 0;
  ::waitpid(child, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

}  // namespace
}  // namespace relive::ha
