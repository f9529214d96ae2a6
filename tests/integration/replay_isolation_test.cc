// A replay takes nothing from its own world: signals sent to the replayed process from outside
// (a terminal resize, a stray kill) are dropped, since the recorded ones come from the log.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "test_util.h"

namespace relive::testing {
namespace {

const char* kCountsSignals =
    "import signal,time\n"
    "got=[]\n"
    "signal.signal(signal.SIGUSR2, lambda s,f: got.append(s))\n"
    "for i in range(40): time.sleep(0.02)\n"
    "print('usr2 received', len(got))\n";

std::vector<pid_t> children_of(pid_t parent) {
  std::ifstream in("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) +
                   "/children");
  std::vector<pid_t> out;
  for (pid_t p; in >> p;) out.push_back(p);
  return out;
}

TEST(ReplayIsolation, SignalsFromOutsideDoNotReachTheReplayedProgram) {
  TempDir d;
  RunResult rec =
      run({relive_bin(), "record", "-o", d / "t", "--", "/usr/bin/python3", "-c", kCountsSignals});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  ASSERT_EQ(rec.out, "usr2 received 0\n");

  std::string out_path = d / "replay.out";
  pid_t relive = ::fork();
  if (relive == 0) {
    FILE* f = std::freopen(out_path.c_str(), "w", stdout);
    (void)f;
    ::execl(relive_bin().c_str(), relive_bin().c_str(), "replay", (d / "t").c_str(), nullptr);
    ::_exit(127);
  }
  int sent = 0, status = 0;
  bool exited = false;
  for (int i = 0; i < 12000 && sent < 5; ++i) {  // a generous minute: the machine may be loaded
    if (::waitpid(relive, &status, WNOHANG) == relive) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (pid_t p : children_of(relive)) {
      std::error_code ec;
      auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(p) + "/exe", ec);
      if (exe.string().find("python3") == std::string::npos) continue;  // not exec'd yet
      if (::kill(p, SIGUSR2) == 0) ++sent;
    }
  }
  if (!exited) ::waitpid(relive, &status, 0);
  EXPECT_GT(sent, 0) << "the replay finished before the test could signal it";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(read_all(out_path), rec.out);
}

}  // namespace
}  // namespace relive::testing
