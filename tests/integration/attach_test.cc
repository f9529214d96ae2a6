// relive record --pid: attach to a running counter, record it for a while from a copy-on-write
// CRIU checkpoint, detach, and replay from the checkpoint. The replay must print exactly the
// lines the original printed while recorded (each carries a state hash mixing the clock and
// randomness), so it ended in the same state; the original must run on unharmed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>

#include "test_util.h"
#include "tracee/syscall_dispatch.h"

namespace relive::testing {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Starts `argv` detached from the test's stdio, stdout into `out_path` (and stderr into
// `err_path`, if given).
pid_t spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path = "") {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    FILE* f = std::freopen(out_path.c_str(), "w", stdout);
    if (!err_path.empty()) f = std::freopen(err_path.c_str(), "w", stderr);
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

// Waits (generously: the machine may be loaded) until `path` has `n` lines.
void wait_for_lines(const std::string& path, size_t n) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (lines_of(read_all(path)).size() < n && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

// Waits until `relive record --pid` has checkpointed the process (the trace header is written
// after the checkpoint) and the process has printed `more` lines since: recorded ones.
void wait_recorded_lines(const std::string& trace, const std::string& out, size_t more) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (::access((trace + "/header").c_str(), F_OK) != 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  wait_for_lines(out, lines_of(read_all(out)).size() + more);
}

// The CPUs `pid` may run on, as /proc lists them ("0-1").
std::string cpus_allowed(pid_t pid) {
  std::istringstream in(read_all("/proc/" + std::to_string(pid) + "/status"));
  for (std::string l; std::getline(in, l);)
    if (l.rfind("Cpus_allowed_list:", 0) == 0) return l.substr(l.find_first_not_of(" \t", 18));
  return "";
}

struct Child {
  pid_t pid;
  ~Child() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

// `relive record --pid` attached to `pid` (stderr into `err`, if given).
pid_t record_attached(const std::string& trace, pid_t pid, const std::string& err = "") {
  return spawn({"/usr/bin/env", "RELIVE_LOG=debug", relive_bin(), "record", "-o", trace, "--pid",
                std::to_string(pid)},
               "/dev/null", err);
}

// Every line the replay printed is the line the original printed at that count.
void expect_replayed_lines(const RunResult& replayed, const std::string& out) {
  ASSERT_EQ(replayed.exit_code, 0) << replayed.err;
  std::vector<std::string> got = lines_of(replayed.out), original = lines_of(read_all(out));
  ASSERT_GE(got.size(), 10u) << "too few lines recorded";
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

TEST(Attach, ReplayFromCheckpointEndsInTheRecordedState) {
  TempDir d;
  std::string out = d / "counter.out", trace = d / "trace";
  Child counter{spawn({test_bin_dir() + "/subjects/counter", "100000"}, out)};
  wait_for_lines(out, 5);

  pid_t rec = spawn({relive_bin(), "record", "-o", trace, "--pid", std::to_string(counter.pid)},
                    "/dev/null");
  wait_recorded_lines(trace, out, 12);
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

  expect_replayed_lines(run({relive_bin(), "replay", trace}), out);
}

// Whether `pid` has a handler for SIGSYS (its SigCgt mask in /proc).
bool catches_sigsys(pid_t pid) {
  std::istringstream in(read_all("/proc/" + std::to_string(pid) + "/status"));
  for (std::string l; std::getline(in, l);)
    if (l.rfind("SigCgt:", 0) == 0)
      return (std::stoull(l.substr(7), nullptr, 16) >> (SIGSYS - 1)) & 1;
  return false;
}

// Attached, the process's common calls go through the fast path (syscall user dispatch stops
// the rest); let go, it has neither dispatch nor relive's SIGSYS handler left: with its selector
// set to "block" behind its back, its calls still go through.
TEST(Attach, CallsTakeTheFastPathAndDetachLeavesNoDispatchBehind) {
  TempDir d;
  std::string out = d / "counter.out", trace = d / "trace", err = d / "relive.err";
  Child counter{spawn({test_bin_dir() + "/subjects/counter", "100000"}, out)};
  wait_for_lines(out, 5);
  ASSERT_FALSE(catches_sigsys(counter.pid));
  pid_t rec = record_attached(trace, counter.pid, err);
  wait_recorded_lines(trace, out, 12);
  EXPECT_TRUE(catches_sigsys(counter.pid)) << "no safety net while recorded";
  ::kill(rec, SIGINT);
  int status = 0;
  ::waitpid(rec, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_all(err);
  std::string log = read_all(err);
  size_t at = log.find(" through the syscall buffer");
  ASSERT_NE(at, std::string::npos) << log;
  size_t open = log.rfind('(', at);
  EXPECT_GT(std::stol(log.substr(open + 1)), 0) << log;
  EXPECT_NE(run({relive_bin(), "dump", trace}).out.find("patched syscall site"), std::string::npos);

  EXPECT_FALSE(catches_sigsys(counter.pid)) << "relive's SIGSYS handler left behind";
  std::string mem = "/proc/" + std::to_string(counter.pid) + "/mem";
  FILE* f = std::fopen(mem.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  const unsigned char block = tracee::kSelectorBlock;
  ASSERT_EQ(std::fseek(f, static_cast<long>(tracee::kDispatchSelectorAddr), SEEK_SET), 0);
  ASSERT_EQ(std::fwrite(&block, 1, 1, f), 1u);
  std::fclose(f);
  size_t before = lines_of(read_all(out)).size();
  wait_for_lines(out, before + 3);
  EXPECT_EQ(::kill(counter.pid, 0), 0);
  EXPECT_GT(lines_of(read_all(out)).size(), before) << "dispatch was left on";

  expect_replayed_lines(run({relive_bin(), "replay", trace}), out);
}

// A recorder killed outright (SIGKILL, a crash) cannot take dispatch off: the SIGSYS handler it
// left lets every call through, and the process carries on untraced.
TEST(Attach, AKilledRecorderLeavesTheProcessRunning) {
  TempDir d;
  std::string out = d / "counter.out", trace = d / "trace";
  Child counter{spawn({test_bin_dir() + "/subjects/counter", "100000"}, out)};
  wait_for_lines(out, 5);
  pid_t rec = record_attached(trace, counter.pid);
  wait_recorded_lines(trace, out, 5);
  ::kill(rec, SIGKILL);
  ::waitpid(rec, nullptr, 0);
  size_t before = lines_of(read_all(out)).size();
  wait_for_lines(out, before + 5);
  ASSERT_EQ(::kill(counter.pid, 0), 0);
  EXPECT_EQ(
      sh("grep -q '^State:[[:space:]]*[SR]' /proc/" + std::to_string(counter.pid) + "/status"), 0)
      << "not running";
  EXPECT_GE(lines_of(read_all(out)).size(), before + 5) << "stopped counting";
}

// The process's own syscall user dispatch configuration, read through ptrace (Linux 6.4+):
// nullopt when it cannot be read.
struct DispatchConfig {
  uint64_t mode = 0, selector = 0, offset = 0, len = 0;
};
std::optional<DispatchConfig> dispatch_config(pid_t pid) {
  if (::ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) != 0) return std::nullopt;
  ::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr);
  ::waitpid(pid, nullptr, __WALL);
  DispatchConfig c;
  long got = ::ptrace(static_cast<__ptrace_request>(0x4211), pid, sizeof c, &c);
  ::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
  if (got != 0) return std::nullopt;
  return c;
}

// A process that uses syscall user dispatch itself keeps it: relive records it with every call
// stopped instead, and the recording replays.
TEST(Attach, AProcessUsingDispatchItselfKeepsItAndIsRecordedWithEveryCallStopped) {
  TempDir d;
  std::string out = d / "own.out", trace = d / "trace", err = d / "relive.err";
  Child own{spawn({test_bin_dir() + "/subjects/counter", "100000", "dispatch-before"}, out)};
  wait_for_lines(out, 5);
  std::optional<DispatchConfig> before = dispatch_config(own.pid);
  if (!before) GTEST_SKIP() << "this kernel cannot report a process's dispatch configuration";
  ASSERT_EQ(before->mode, 1u);
  pid_t rec = record_attached(trace, own.pid, err);
  wait_recorded_lines(trace, out, 12);
  ::kill(rec, SIGINT);
  int status = 0;
  ::waitpid(rec, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_all(err);
  EXPECT_NE(read_all(err).find("uses syscall user dispatch itself"), std::string::npos)
      << read_all(err);
  std::optional<DispatchConfig> after = dispatch_config(own.pid);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->mode, 1u);
  EXPECT_EQ(after->selector, before->selector) << "relive's dispatch replaced the process's own";
  EXPECT_EQ(after->offset, before->offset);
  expect_replayed_lines(run({relive_bin(), "replay", trace}), out);
}

// A process that turns dispatch on while recorded would replace relive's, and the calls it
// stops with would go unrecorded: the recording ends there with a clear refusal, and the process
// carries on with its own dispatch.
TEST(Attach, TurningDispatchOnWhileRecordedEndsTheRecordingAndLeavesTheProcessRunning) {
  TempDir d;
  std::string out = d / "own.out", trace = d / "trace", err = d / "relive.err";
  Child own{spawn({test_bin_dir() + "/subjects/counter", "100000", "dispatch-later"}, out)};
  wait_for_lines(out, 3);
  pid_t rec = record_attached(trace, own.pid, err);
  int status = 0;
  ::waitpid(rec, &status, 0);  // the program turns dispatch on at its 41st line
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 125) << read_all(err);
  EXPECT_NE(read_all(err).find("PR_SET_SYSCALL_USER_DISPATCH"), std::string::npos) << read_all(err);
  size_t lines = lines_of(read_all(out)).size();
  wait_for_lines(out, lines + 5);
  EXPECT_GE(lines_of(read_all(out)).size(), lines + 5) << "the process stopped";
  std::optional<DispatchConfig> after = dispatch_config(own.pid);
  if (after) {
    EXPECT_EQ(after->mode, 1u);
    EXPECT_EQ(after->offset, 0u) << "not the process's own dispatch";
  }
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
  wait_recorded_lines(trace, out, 12);
  ::kill(rec, SIGUSR1);
  int status = 0;
  ::waitpid(rec, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // Recorded on one CPU, frozen with its own CPUs back (what CRIU then dumps).
  EXPECT_EQ(cpus_allowed(counter.pid), cpus_allowed(::getpid()));
  EXPECT_EQ(sh("grep -q '^State:[[:space:]]*T' /proc/" + std::to_string(counter.pid) + "/status"),
            0)
      << "not stopped";
  size_t frozen = lines_of(read_all(out)).size();
  RunResult replayed = run({relive_bin(), "replay", trace});
  EXPECT_EQ(lines_of(read_all(out)).size(), frozen) << "printed while frozen (during the replay)";
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

// While recorded, the process runs on the recorder's one CPU (tracee/cpu_binding.h); detached,
// it has its own CPUs back.
TEST(Attach, TheProcessRunsOnOneCpuWhileRecordedAndGetsItsOwnCpusBack) {
  if (sh("test $(nproc) -ge 2") != 0) GTEST_SKIP() << "needs two CPUs to tell a binding from none";
  TempDir d;
  std::string out = d / "counter.out", trace = d / "trace";
  Child counter{spawn({test_bin_dir() + "/subjects/counter", "100000"}, out)};
  wait_for_lines(out, 5);
  std::string own = cpus_allowed(counter.pid);
  pid_t rec = spawn({relive_bin(), "record", "-o", trace, "--pid", std::to_string(counter.pid)},
                    "/dev/null");
  wait_recorded_lines(trace, out, 3);  // running under the session: bound before it began
  std::string bound = cpus_allowed(counter.pid);
  EXPECT_EQ(bound.find_first_of(",-"), std::string::npos) << "not one CPU: " << bound;
  ::kill(rec, SIGINT);
  int status = 0;
  ::waitpid(rec, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(cpus_allowed(counter.pid), own);
}

// The process's [vdso] bytes, read through /proc/PID/mem.
std::string vdso_bytes(pid_t pid) {
  std::istringstream maps(read_all("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string line; std::getline(maps, line);) {
    if (line.find("[vdso]") == std::string::npos) continue;
    unsigned long start = 0, end = 0;
    std::sscanf(line.c_str(), "%lx-%lx", &start, &end);
    std::string mem(end - start, '\0');
    FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/mem").c_str(), "rb");
    if (f == nullptr) return "";
    bool ok = std::fseek(f, static_cast<long>(start), SEEK_SET) == 0 &&
              std::fread(mem.data(), 1, mem.size(), f) == mem.size();
    std::fclose(f);
    return ok ? mem : "";
  }
  return "";
}

// A process that spends its time in a tight loop around vDSO clock reads (it is often inside
// the vDSO when relive stops it): attached, recorded and let go, it runs on with its state
// intact and its vDSO exactly as the kernel made it; the recording replays.
TEST(Attach, TightVdsoLoopRunsOnAfterDetachWithItsOwnVdso) {
  TempDir d;
  std::string result = d / "result", trace = d / "trace";
  Child subject{spawn({test_bin_dir() + "/subjects/mig_vdso", result}, "/dev/null")};
  auto ready = [&] { return read_all(result).rfind("READY", 0) == 0; };
  for (int i = 0; i < 6000 && !ready(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(ready()) << read_all(result);
  pid_t pid = std::atoi(read_all(result).c_str() + 6);  // mig_vdso detaches into its own session
  std::string pristine = vdso_bytes(pid);
  ASSERT_FALSE(pristine.empty());
  for (int round = 0; round < 3; ++round) {
    TempDir t;
    pid_t rec = spawn({relive_bin(), "record", "-o", t / "trace", "--pid", std::to_string(pid)},
                      "/dev/null");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (::access((t / "trace/header").c_str(), F_OK) != 0 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ::kill(rec, SIGINT);
    int status = 0;
    ::waitpid(rec, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(vdso_bytes(pid), pristine) << "the vDSO was left patched";
    RunResult replayed = run({relive_bin(), "replay", t / "trace"});
    EXPECT_EQ(replayed.exit_code, 0) << replayed.err;
  }
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  for (int i = 0; i < 6000 && read_all(result).rfind("READY", 0) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(read_all(result), "OK\n");
}

// A multi-threaded process: its threads blocked in a futex and in epoll_wait, one in a compute
// loop, and threads created and joined while it is recorded. Every thread is checkpointed (the
// copy-on-write child gets each one recreated) and recorded; the replay prints what the
// original printed, and the original runs on with all its threads after the detach.
TEST(Attach, MultiThreadedProcessIsRecordedWithEveryThreadAndReplays) {
  TempDir d;
  std::string out = d / "counter.out", trace = d / "trace";
  Child counter{spawn({test_bin_dir() + "/subjects/threads_counter_attach", "100000"}, out)};
  wait_for_lines(out, 5);
  auto threads = [&] {
    std::error_code ec;
    auto it =
        std::filesystem::directory_iterator("/proc/" + std::to_string(counter.pid) + "/task", ec);
    return ec ? 0 : std::distance(begin(it), end(it));
  };
  ASSERT_EQ(threads(), 4);

  pid_t rec = spawn({relive_bin(), "record", "-o", trace, "--pid", std::to_string(counter.pid)},
                    "/dev/null", d / "record.err");
  wait_recorded_lines(trace, out, 60);  // past two helper threads
  ::kill(rec, SIGINT);
  int status = 0;
  ::waitpid(rec, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "relive record died of signal " << WTERMSIG(status);
  ASSERT_EQ(WEXITSTATUS(status), 0) << read_all(d / "record.err");

  size_t before = lines_of(read_all(out)).size();
  wait_for_lines(out, before + 3);
  ASSERT_EQ(::kill(counter.pid, 0), 0);
  ASSERT_GT(lines_of(read_all(out)).size(), before);
  EXPECT_EQ(threads(), 4) << "the original lost threads";

  RunResult dumped = run({relive_bin(), "dump", trace});
  EXPECT_NE(dumped.out.find("clone"), std::string::npos) << "no thread was created while recorded";
  expect_replayed_lines(run({relive_bin(), "replay", trace}), out);
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
