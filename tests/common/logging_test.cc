#include "common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/console_globals.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

namespace relive {
namespace {

// The child of a fork that happened while another thread was inside the stderr sink can still
// log: fork() waited for the sink, so the child does not inherit it locked.
TEST(Logging, AChildForkedWhileAnotherThreadLogsCanLog) {
  init_logging();
  std::mutex& sink = spdlog::details::console_mutex::mutex();
  std::promise<void> inside;
  std::thread writer([&] {  // another thread, half-way through a line
    sink.lock();
    inside.set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    sink.unlock();
  });
  inside.get_future().wait();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    RELIVE_LOG_ERROR("a line from the forked child");  // blocks for ever on an inherited lock
    ::_exit(0);
  }
  writer.join();
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 600 && done == 0; ++i) {  // up to 60 s
    done = ::waitpid(pid, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ASSERT_EQ(done, pid) << "the child hangs on the sink's lock it inherited";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace relive
