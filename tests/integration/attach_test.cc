// relive record --pid: attach to a running counter, record it for a while from a copy-on-write
// CRIU checkpoint, detach, and replay from the checkpoint. The replay must print exactly the
// lines the original printed while recorded (each carries a state hash mixing the clock and
// randomness), so it ended in the same state; the original must run on unharmed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "test_util.h"

namespace relive::testing {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Starts `argv` detached from the test's stdio, stdout into `out_path`.
pid_t spawn(const std::vector<std::string>& argv, const std::string& out_path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    FILE* f = std::freopen(out_path.c_str(), "w", stdout);
    (void)f;
    std::freopen("/dev/null", "r", stdin);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

void wait_for_lines(const std::string& path, size_t n) {
  for (int i = 0; i < 500 && lines_of(read_all(path)).size() < n; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

struct Child {
  pid_t pid;
  ~Child() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

TEST(Attach, ReplayFromCheckpointEndsInTheRecordedState) {
  TempDir d;
  std::string out = d / "counter.out", trace = d / "trace";
  Child counter{spawn({test_bin_dir() + "/subjects/counter", "100000"}, out)};
  wait_for_lines(out, 5);

  pid_t rec = spawn({relive_bin(), "record", "-o", trace, "--pid", std::to_string(counter.pid)},
                    "/dev/null");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(rec, SIGINT);
  int status = 0;
  ::waitpid(rec, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "relive record died of signal " << WTERMSIG(status);
  ASSERT_EQ(WEXITSTATUS(status), 0);

  // The original survived the attach, checkpoint and detach, and goes on counting.
  size_t before = lines_of(read_all(out)).size();
  wait_for_lines(out, before + 3);
  ASSERT_EQ(::kill(counter.pid, 0), 0);
  ASSERT_GT(lines_of(read_all(out)).size(), before);

  RunResult replayed = run({relive_bin(), "replay", trace});
  ASSERT_EQ(replayed.exit_code, 0) << replayed.err;
  std::vector<std::string> got = lines_of(replayed.out), original = lines_of(read_all(out));
  ASSERT_GE(got.size(), 10u) << "too few lines recorded in 1.5 s";
  for (const std::string& line : got) {
    long n = std::stol(line.substr(0, line.find(' ')));
    ASSERT_GE(n, 1);
    ASSERT_LE(static_cast<size_t>(n), original.size());
    EXPECT_EQ(original[n - 1], line) << "replayed state differs at counter " << n;
  }
  long first = std::stol(got.front()), last = std::stol(got.back());
  EXPECT_EQ(last - first + 1, static_cast<long>(got.size()))
      << "replayed lines are not consecutive";
}

// --live and SIGUSR1 (what relive migrate --strategy crtr does): recording ends with the process
// frozen exactly where the log ends. It prints nothing while frozen; the replay reproduces every
// line up to the freeze; and once continued, the process goes on with the next line.
TEST(Attach, FreezeStopsTheProcessWhereTheLogEnds) {
  TempDir d;
  std::string out = d / "counter.out", trace = d / "trace";
  Child counter{spawn({test_bin_dir() + "/subjects/counter", "100000"}, out)};
  wait_for_lines(out, 5);
  pid_t rec =
      spawn({relive_bin(), "record", "-o", trace, "--pid", std::to_string(counter.pid), "--live"},
            "/dev/null");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(rec, SIGUSR1);
  int status = 0;
  ::waitpid(rec, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(sh("grep -q '^State:[[:space:]]*T' /proc/" + std::to_string(counter.pid) + "/status"),
            0)
      << "not stopped";
  size_t frozen = lines_of(read_all(out)).size();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(lines_of(read_all(out)).size(), frozen) << "printed while frozen";

  RunResult replayed = run({relive_bin(), "replay", trace});
  ASSERT_EQ(replayed.exit_code, 0) << replayed.err;
  std::vector<std::string> got = lines_of(replayed.out), original = lines_of(read_all(out));
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), original.back()) << "the replay did not end where the process froze";

  ::kill(counter.pid, SIGCONT);
  wait_for_lines(out, frozen + 3);
  std::vector<std::string> after = lines_of(read_all(out));
  ASSERT_GT(after.size(), frozen);
  EXPECT_EQ(std::stol(after[frozen]), std::stol(after[frozen - 1]) + 1);
}

TEST(Attach, MultiThreadedProcessIsRefusedAndLeftRunning) {
  TempDir d;
  Child sleeper{spawn({"/usr/bin/python3", "-c",
                       "import threading,time\n"
                       "threading.Thread(target=time.sleep,args=(60,),daemon=True).start()\n"
                       "print('up',flush=True); time.sleep(60)"},
                      d / "out")};
  wait_for_lines(d / "out", 1);
  RunResult r = run({relive_bin(), "record", "-o", d / "t", "--pid", std::to_string(sleeper.pid)});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("threads"), std::string::npos) << r.err;
  EXPECT_EQ(::kill(sleeper.pid, 0), 0);
}

TEST(Attach, FailedCheckpointLeavesTheProcessRunningUntraced) {
  TempDir d;
  std::string out = d / "counter.out";
  Child counter{spawn({test_bin_dir() + "/subjects/counter", "100000"}, out)};
  wait_for_lines(out, 3);
  // A CRIU that cannot run: the checkpoint fails after relive has attached and forked.
  ::setenv("RELIVE_CRIU", "/nonexistent/criu", 1);
  RunResult r =
      run({relive_bin(), "record", "-o", d / "t", "--pid", std::to_string(counter.pid)}, 60);
  ::unsetenv("RELIVE_CRIU");
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("checkpoint of process"), std::string::npos) << r.err;
  size_t before = lines_of(read_all(out)).size();
  wait_for_lines(out, before + 3);
  EXPECT_GT(lines_of(read_all(out)).size(), before) << "the process stopped counting";
  std::string status = read_all("/proc/" + std::to_string(counter.pid) + "/status");
  EXPECT_NE(status.find("TracerPid:\t0"), std::string::npos) << "still traced";
  // No stray checkpoint child is left behind (it would be a child of the counter).
  std::string children = read_all("/proc/" + std::to_string(counter.pid) + "/task/" +
                                  std::to_string(counter.pid) + "/children");
  EXPECT_TRUE(children.empty()) << "leftover children: " << children;
}

TEST(Attach, MissingProcessIsAClearError) {
  TempDir d;
  RunResult r = run({relive_bin(), "record", "-o", d / "t", "--pid", "999999999"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("no process"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace relive::testing
