#include "tracee/resume_check.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <string>

namespace relive::tracee {
namespace {

// A child that stops itself (as CRIU leaves a restored process) and then does `then`.
class StoppedChild {
 public:
  explicit StoppedChild(const std::function<void()>& then) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::raise(SIGSTOP);
      then();
      ::_exit(0);
    }
    int st = 0;
    ::waitpid(pid_, &st, WUNTRACED);  // stopped now
  }
  ~StoppedChild() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  // Dead and reaped (by us, or by the check, which was its tracer too).
  bool gone() {
    ::waitpid(pid_, nullptr, WNOHANG);
    return ::kill(pid_, 0) != 0;
  }

 private:
  pid_t pid_;
};

TEST(ResumeCheck, AProcessThatReachesASystemCallRuns) {
  StoppedChild c([] {
    for (;;) ::pause();
  });
  EXPECT_TRUE(resume_and_confirm({c.pid()}).ok());
  EXPECT_EQ(::kill(c.pid(), 0), 0) << "still running";
}

TEST(ResumeCheck, AComputeLoopThatNeverMakesASystemCallRunsForTheWindow) {
  StoppedChild c([] {
    volatile uint64_t x = 0;
    for (;;) x = x + 1;
  });
  EXPECT_TRUE(resume_and_confirm({c.pid()}).ok());
  EXPECT_EQ(::kill(c.pid(), 0), 0);
}

TEST(ResumeCheck, AFaultOnTheFirstInstructionsIsCaughtAndTheProcessKilled) {
  StoppedChild c([] {
    volatile int* nowhere = nullptr;
    *nowhere = 1;
  });
  Status s = resume_and_confirm({c.pid()});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Segmentation fault"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("at ip 0x"), std::string::npos) << s.to_string();
  EXPECT_TRUE(c.gone()) << "the check must kill what faulted";
}

TEST(ResumeCheck, AFaultInAnotherThreadIsCaught) {
  StoppedChild c([] {
    pthread_t t;
    // The fault comes from a second thread, after the first one has run on.
    pthread_create(
        &t, nullptr,
        [](void*) -> void* {
          volatile int* nowhere = nullptr;
          *nowhere = 2;
          return nullptr;
        },
        nullptr);
    for (;;) ::pause();
  });
  ResumeCheck generous;  // a loaded machine may be slow to run the thread at all
  generous.window = std::chrono::seconds(5);
  Status s = resume_and_confirm({c.pid()}, generous);  // returns at the fault
  // The new thread did not exist when the check seized the process: it is watched from its
  // creation, and its fault is caught like any other.
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Segmentation fault"), std::string::npos) << s.to_string();
  EXPECT_TRUE(c.gone());
}

// Children that come and go, a process that stops itself: the workload's own business.
TEST(ResumeCheck, ShortLivedChildrenAndSelfStopsAreNotFailures) {
  StoppedChild c([] {
    for (int i = 0; i < 20; ++i) {
      pid_t k = ::fork();
      if (k == 0) ::_exit(0);
      ::waitpid(k, nullptr, 0);
    }
    ::raise(SIGSTOP);
    for (;;) ::pause();
  });
  ResumeCheck longer;
  longer.window = std::chrono::milliseconds(300);
  EXPECT_TRUE(resume_and_confirm({c.pid()}, longer).ok());
  // Stopped by itself, and left stopped.
  auto state = [&] {
    std::ifstream in("/proc/" + std::to_string(c.pid()) + "/stat");
    std::string line;
    std::getline(in, line);
    size_t close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
  };
  for (int i = 0; i < 3000 && state() != 'T'; ++i) ::usleep(2000);
  EXPECT_EQ(state(), 'T');
}

TEST(ResumeCheck, AProcessThatIsGoneIsNotRunning) {
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  EXPECT_FALSE(resume_and_confirm({gone}).ok());
}

}  // namespace
}  // namespace relive::tracee
