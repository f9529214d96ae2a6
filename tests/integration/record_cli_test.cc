// `relive record` / `relive replay` as users and supervisors drive them: rdtsc on machines that
// do and do not trap it, a trace directory named relative to another working directory, and
// signals sent to relive (a supervisor's SIGTERM, a SIGKILL).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "netns_hosts.h"
#include "test_util.h"

namespace relive::testing {
namespace {

using std::chrono::seconds;

// The test's own answer to "does rdtsc trap here?", independent of relive's.
bool machine_traps_rdtsc() {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGSEGV, SIG_DFL);
    ::prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0);
    volatile unsigned long long t = __rdtsc();
    (void)t;
    ::_exit(0);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

nlohmann::json trace_header(const std::string& trace) {
  RunResult d = run({relive_bin(), "dump", trace, "--json"});
  std::istringstream in(d.out);
  std::string first;
  std::getline(in, first);
  auto j = nlohmann::json::parse(first, nullptr, false);
  return j.is_object() && j.contains("header") ? j["header"] : nlohmann::json();
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(RecordCli, RdtscIsRecordedWhereItTrapsAndReportedWhereItDoesNot) {
  TempDir d;
  std::string trace = d / "t";
  RunResult rec =
      run({relive_bin(), "record", "-o", trace, "--", test_bin_dir() + "/subjects/rdtsc", "5"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  ASSERT_EQ(count_of(rec.out, "\n"), 5u) << rec.out;
  nlohmann::json h = trace_header(trace);
  if (!machine_traps_rdtsc()) {
    EXPECT_EQ(h.value("rdtsc", ""), "untrapped") << h.dump();
    std::printf("rdtsc does not trap on this machine: its report is checked, not its replay\n");
    return;
  }
  EXPECT_EQ(h.value("rdtsc", ""), "trapped") << h.dump();
  RunResult dump = run({relive_bin(), "dump", trace});
  EXPECT_GE(count_of(dump.out, " rdtsc = "), 5u) << dump.out;
  EXPECT_GE(count_of(dump.out, " rdtscp = "), 5u) << dump.out;
  RunResult rep = run({relive_bin(), "replay", trace});
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, rec.out) << "the replay read other TSC values than the recording";
}

// The tracer and the program share one CPU unless --cpu says otherwise; the replay reproduces
// what the recording saw.
TEST(RecordCli, TheProgramSeesOneCpuUnlessToldOtherwise) {
  RunResult native = run({"/usr/bin/nproc"});
  ASSERT_EQ(native.exit_code, 0);
  if (native.out == "1\n") GTEST_SKIP() << "needs two CPUs to tell a binding from none";
  TempDir d;
  RunResult bound = run({relive_bin(), "record", "-o", d / "t1", "--", "/usr/bin/nproc"});
  ASSERT_EQ(bound.exit_code, 0) << bound.err;
  EXPECT_EQ(bound.out, "1\n");
  RunResult rep = run({relive_bin(), "replay", d / "t1"});
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, "1\n");
  RunResult unbound =
      run({relive_bin(), "record", "--cpu", "none", "-o", d / "t2", "--", "/usr/bin/nproc"});
  ASSERT_EQ(unbound.exit_code, 0) << unbound.err;
  EXPECT_EQ(unbound.out, native.out);
  RunResult bad = run({relive_bin(), "record", "--cpu", "lots", "-o", d / "t3", "--", "true"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--cpu"), std::string::npos) << bad.err;
}

// A trace named relative to the recording's working directory replays from anywhere else.
// A call the recorder refuses, made by a process that left the leader's process group (setsid)
// while the leader waits: the recording ends with the reason, and every recorded process is
// gone. Killing the leader alone left the others in ptrace stops and the recorder waiting on
// them for ever (seen with coreutils' timeout, which leaves the group, before rt_sigsuspend was
// supported).
TEST(RecordCli, ARefusedCallEndsTheRecordingOfEveryProcess) {
  TempDir d;
  std::string naps = "29." + std::to_string(::getpid());  // sleep's argument marks its processes
  RunResult rec = run({relive_bin(), "record", "-o", d / "t", "--", "/bin/bash", "-c",
                       "(sleep " + naps +
                           ") & setsid /usr/bin/python3 -c "
                           "'import ctypes; ctypes.CDLL(None).syscall(136, 0, 0)' & "
                           "sleep " +
                           naps + "; wait"},
                      120);
  EXPECT_NE(rec.exit_code, 0);
  EXPECT_NE(rec.err.find("ustat"), std::string::npos) << rec.err;
  EXPECT_NE(rec.err.find("not supported"), std::string::npos) << rec.err;
  EXPECT_TRUE(eventually([&] { return sh("pgrep -f 'slee[p] " + naps + "' >/dev/null") != 0; },
                         seconds(10)))
      << "a recorded process outlived the recording";
}

TEST(RecordCli, RelativeTraceDirectoryReplaysFromAnotherDirectory) {
  TempDir d;
  std::string work = d / "work";
  ASSERT_EQ(sh("mkdir -p " + work), 0);
  RunResult rec = run({"/usr/bin/env", "-C", work, relive_bin(), "record", "-o", "t", "--",
                       "/usr/bin/python3", "-c", "import json; print(json.dumps([1, 2]))"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  // Replayed from the parent directory (as "work/t") and from elsewhere (absolute is fine too).
  RunResult rep = run({"/usr/bin/env", "-C", d.path(), relive_bin(), "replay", "work/t"});
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, rec.out);
  RunResult rep2 = run({"/usr/bin/env", "-C", work, relive_bin(), "replay", "t"});
  EXPECT_EQ(rep2.exit_code, 0) << rep2.err;
  EXPECT_EQ(rep2.out, rec.out);
}

// Which writes are the recording's stdout is decided per process: here the child's fd 1 is a
// pipe and the parent's the recorder's stdout, and the parent writes right after the child with
// no descriptor opened or closed between the two writes. Deciding by descriptor number alone
// took the parent's lines for pipe bytes, and the replay left them out yet exited 0 (seen with
// `sort | head` in a shell under load).
TEST(RecordCli, StdoutOfEachProcessIsItsOwnDescriptorTable) {
  TempDir d;
  std::string trace = d / "t";
  RunResult rec =
      run({relive_bin(), "record", "-o", trace, "--", test_bin_dir() + "/subjects/fd_streams"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  ASSERT_EQ(rec.out, "parent line\nchild line\n");
  RunResult dump = run({relive_bin(), "dump", trace});
  EXPECT_EQ(count_of(dump.out, " to stdout"), 2u) << dump.out;
  RunResult rep = run({relive_bin(), "replay", trace});
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, rec.out);
}

// The recorded program writes its pid, then waits for a signal; SIGTERM makes it say so and
// exit 3.
const char* kWaiter = R"(
import os, signal, sys, time
def bye(sig, frame):
    print("terminated", flush=True); sys.exit(3)
signal.signal(signal.SIGTERM, bye)
open(sys.argv[1], "w").write(str(os.getpid()))
print("up", flush=True)
while True: time.sleep(0.05)
)";

bool process_gone(pid_t pid) {
  std::string stat = read_all("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return stat.empty() || (close != std::string::npos && close + 2 < stat.size() &&
                          (stat[close + 2] == 'Z' || stat[close + 2] == 'X'));
}

class RecordSignals : public ::testing::Test {
 protected:
  void start() {
    write_all_to(d_ / "waiter.py", kWaiter);
    rec_ = std::make_unique<Background>(
        std::vector<std::string>{relive_bin(), "record", "-o", d_ / "t", "--", "/usr/bin/python3",
                                 d_ / "waiter.py", d_ / "pid"},
        d_ / "out", d_ / "err");
    ASSERT_TRUE(eventually([&] { return read_all(d_ / "out").find("up") != std::string::npos; },
                           seconds(60)))
        << read_all(d_ / "err");
    program_ = std::atoi(read_all(d_ / "pid").c_str());
    ASSERT_GT(program_, 0);
  }
  void TearDown() override {
    if (program_ > 0) ::kill(program_, SIGKILL);
  }
  TempDir d_;
  std::unique_ptr<Background> rec_;
  pid_t program_ = 0;
};

TEST_F(RecordSignals, SigtermToReliveReachesTheProgramAndTheTraceReplays) {
  start();
  ASSERT_EQ(::kill(rec_->pid(), SIGTERM), 0);
  int code = rec_->wait_exit(std::chrono::seconds(60));
  EXPECT_EQ(code, 3) << "relive exits with the program's status" << read_all(d_ / "err");
  EXPECT_TRUE(eventually([&] { return process_gone(program_); }, seconds(10)));
  EXPECT_EQ(read_all(d_ / "out"), "up\nterminated\n");
  // The signal is part of the recording: the replay reproduces the handler's output.
  ASSERT_EQ(sh("rm -f " + d_ / "pid"), 0);
  RunResult rep = run({relive_bin(), "replay", d_ / "t"});
  EXPECT_EQ(rep.exit_code, 3) << rep.err;
  EXPECT_EQ(rep.out, "up\nterminated\n");
}

// A SIGKILL of the recorded program itself (the OOM killer, an operator): relive ends with the
// program's status, and the trace replays to the point where the recording ended and ends there
// the same way (the calls the program made after its last stop died with it).
TEST_F(RecordSignals, SigkillOfTheProgramEndsTheRecordingAndItsReplayTheSameWay) {
  start();
  ASSERT_EQ(::kill(program_, SIGKILL), 0);
  EXPECT_EQ(rec_->wait_exit(std::chrono::seconds(60)), 128 + SIGKILL) << read_all(d_ / "err");
  RunResult dump = run({relive_bin(), "dump", d_ / "t"});
  EXPECT_NE(dump.out.find("killed by SIGKILL"), std::string::npos) << dump.out.substr(0, 2000);
  ASSERT_EQ(sh("rm -f " + d_ / "pid"), 0);
  RunResult rep = run({relive_bin(), "replay", d_ / "t"});
  EXPECT_EQ(rep.exit_code, 128 + SIGKILL) << rep.err;
  EXPECT_EQ(rep.out, "up\n");
  EXPECT_EQ(rep.err.find("divergence"), std::string::npos) << rep.err;
}

TEST_F(RecordSignals, SigkillOfReliveLeavesNothingRunning) {
  start();
  ASSERT_EQ(::kill(rec_->pid(), SIGKILL), 0);
  EXPECT_EQ(rec_->wait_exit(std::chrono::seconds(30)), 128 + SIGKILL);
  EXPECT_TRUE(eventually([&] { return process_gone(program_); }, seconds(10)))
      << "the recorded program kept running after relive was killed";
}

}  // namespace
}  // namespace relive::testing
