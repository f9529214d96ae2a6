// Programs whose threads wait for each other without a syscall (spin-waits) record and replay:
// the recorder preempts a thread whose loop changes nothing and replay finds the same state.
// A loop that changes state on every pass cannot be preempted replayably: the recording ends
// with a clear "unsupported" within the spin limit and leaves nothing running.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <string>

#include "netns_hosts.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string subject(const std::string& name) { return test_bin_dir() + "/subjects/" + name; }

// Whether a live (not zombie) process runs `program` with `arg` among its arguments.
bool running_with_args(const std::string& program, const std::string& arg) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string cmdline = read_all(e.path() / "cmdline");
    if (cmdline.rfind(program + '\0', 0) != 0) continue;
    if (cmdline.find('\0' + arg + '\0') == std::string::npos) continue;
    std::string stat = read_all(e.path() / "stat");
    size_t close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z')
      return true;
  }
  return false;
}

// Records argv, checks its output (when `expected_out` is given), replays it and checks the
// replay prints exactly what the recording did; returns the number of preemptions in the trace.
size_t record_and_replay(const TempDir& d, const std::vector<std::string>& argv,
                         const std::string& expected_out = "") {
  std::string trace = d / "t";
  std::vector<std::string> rec = {relive_bin(), "record", "-o", trace, "--"};
  rec.insert(rec.end(), argv.begin(), argv.end());
  RunResult r = run(rec, 300);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (!expected_out.empty()) EXPECT_EQ(r.out, expected_out);
  EXPECT_FALSE(r.out.empty());
  RunResult dump = run({relive_bin(), "dump", trace});
  RunResult rep = run({relive_bin(), "replay", trace}, 300);
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, r.out);
  return count_of(dump.out, " preempted at ip ");
}

TEST(Preemption, TwoThreadsHandingATokenThroughASpinWait) {
  TempDir d;
  size_t n = record_and_replay(d, {subject("spin_handoff"), "2", "30"}, "token 60 order 1395\n");
  EXPECT_GT(n, 0u) << "a spin hand-off cannot progress without preemption";
}

TEST(Preemption, FourThreadsHandingATokenThroughASpinWait) {
  TempDir d;
  size_t n = record_and_replay(d, {subject("spin_handoff"), "4", "15"}, "token 60 order 1200\n");
  EXPECT_GT(n, 0u);
}

// Two Python threads hand a flag back and forth in busy loops (the interpreter's own loop, the
// GIL handed over by its switch interval).
TEST(Preemption, PythonThreadsBusyWaitingOnEachOther) {
  TempDir d;
  write_all_to(d / "spin.py",
               "import threading\n"
               "flag = [0]\n"
               "def a():\n"
               "    for i in range(100):\n"
               "        while flag[0] != 0: pass\n"
               "        flag[0] = 1\n"
               "def b():\n"
               "    for i in range(100):\n"
               "        while flag[0] != 1: pass\n"
               "        flag[0] = 0\n"
               "ts = [threading.Thread(target=a), threading.Thread(target=b)]\n"
               "for t in ts: t.start()\n"
               "for t in ts: t.join()\n"
               "print('handed over', flag[0])\n");
  record_and_replay(d, {"/usr/bin/python3", d / "spin.py"}, "handed over 0\n");
}

TEST(Preemption, AThreadSpinningOnAFlagItsSignalHandlerSets) {
  TempDir d;
  size_t n = record_and_replay(d, {subject("spin_signal"), "8"}, "alarms 8\n");
  EXPECT_GT(n, 0u) << "the alarm is delivered at a preemption point";
}

// A timer's signals arriving while a loop makes no system call are held for the next one; a
// standard signal held is one pending signal (as the kernel keeps it), so the program never sees
// a burst of handler runs with no progress in between, which no native run shows.
TEST(Preemption, TimerSignalsHeldOverAComputeLoopArriveAsOnePendingSignal) {
  TempDir d;
  record_and_replay(d, {subject("signal_burst"), "100000000"},
                    "ticks: some, bursts no tick explains: 0\n");
}

TEST(Preemption, ASpinlockProtectedCounterAndALockFreeQueue) {
  TempDir d;
  size_t n = record_and_replay(d, {subject("spin_lock"), "3", "20000", "300"},
                               "counter 60000 sum 181804\n");
  EXPECT_GT(n, 0u);
}

// Every pass of the wait loop increments a counter in memory: no pass looks like another, so
// no replayable preemption point exists. Refused within the spin limit, nothing left running.
TEST(Preemption, ALoopThatChangesMemoryEveryPassIsRefusedWithinTheSpinLimit) {
  TempDir d;
  std::string trace = d / "t";
  auto start = std::chrono::steady_clock::now();
  RunResult r = run({relive_bin(), "record", "--spin-limit", "2000", "-o", trace, "--",
                     subject("spin_handoff"), "2", "1000000", "memory-counter"},
                    120);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.exit_code, 125) << r.err;
  EXPECT_NE(r.err.find("unsupported"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("without a system call"), std::string::npos) << r.err;
  EXPECT_LT(took, seconds(60)) << "the refusal must come within the spin limit, not hang";
  EXPECT_TRUE(eventually([] { return !running_with_args(subject("spin_handoff"), "1000000"); },
                         seconds(30)))
      << "the recorded program was left running";
}

// relive stopped by a supervisor while its program spins: SIGTERM is passed on to the program
// (delivered where the spinning thread is preempted), SIGKILL takes the program with it.
TEST(Preemption, StoppingReliveWhileItsProgramSpinsLeavesNothingRunning) {
  for (int sig : {SIGTERM, SIGKILL}) {
    TempDir d;
    Background rec(
        {relive_bin(), "record", "-o", d / "t", "--", subject("spin_handoff"), "2", "2000000000"},
        d / "out", d / "err");
    ASSERT_TRUE(eventually([] { return running_with_args(subject("spin_handoff"), "2000000000"); },
                           seconds(60)));
    ASSERT_EQ(::kill(rec.pid(), sig), 0);
    EXPECT_EQ(rec.wait_exit(std::chrono::seconds(60)), 128 + sig) << read_all(d / "err");
    EXPECT_TRUE(eventually([] { return !running_with_args(subject("spin_handoff"), "2000000000"); },
                           seconds(30)))
        << "the program kept running after relive got signal " << sig;
  }
}

TEST(Preemption, ProgramsThatNeverSpinAreNotPreempted) {
  TempDir d;
  size_t n = record_and_replay(d, {subject("threads_counter"), "4"});
  EXPECT_EQ(n, 0u);
}

}  // namespace
}  // namespace relive::testing
