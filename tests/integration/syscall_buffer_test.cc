// The recorder's fast path (tracee/syscall_buffer.h): the vDSO's clock calls of a program
// recorded from exec are logged by the program itself, and the trace replays exactly as one
// recorded with every call traced: a clock loop, a timer signal interrupting it, a thread polling
// the clock until another thread runs, two threads sharing the buffer, and a program that
// scribbles over the buffer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "test_util.h"

namespace relive::testing {
namespace {

std::string subject() { return test_bin_dir() + "/subjects/clock_calls"; }

// The count the recorder logs at debug level: "N syscalls (M through the syscall buffer)".
long buffered_count(const std::string& err) {
  size_t at = err.find(" through the syscall buffer");
  if (at == std::string::npos) return -1;
  size_t open = err.rfind('(', at);
  return open == std::string::npos ? -1 : std::strtol(err.c_str() + open + 1, nullptr, 10);
}

struct Recorded {
  RunResult rec;
  long buffered = -1;
};

// Records the subject, replays the trace and checks the replay prints what the recording did.
Recorded record_and_replay(const TempDir& d, const std::vector<std::string>& args,
                           bool buffer = true) {
  std::string trace = d / (buffer ? "fast" : "traced");
  std::vector<std::string> rec = {"/usr/bin/env", "RELIVE_LOG=debug", relive_bin(), "record", "-o",
                                  trace};
  if (!buffer) rec.push_back("--no-syscall-buffer");
  rec.push_back("--");
  rec.push_back(subject());
  rec.insert(rec.end(), args.begin(), args.end());
  Recorded out;
  out.rec = run(rec, 300);
  EXPECT_EQ(out.rec.exit_code, 0) << out.rec.err;
  EXPECT_FALSE(out.rec.out.empty());
  out.buffered = buffered_count(out.rec.err);
  RunResult rep = run({relive_bin(), "replay", trace}, 300);
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, out.rec.out);
  return out;
}

TEST(SyscallBuffer, AClockLoopIsLoggedByTheProgramAndReplaysExactly) {
  TempDir d;
  Recorded fast = record_and_replay(d, {"loop", "3000"});
  // 4 fast calls a round; the traced forms (every 7th round) and the first calls are not.
  EXPECT_GT(fast.buffered, 3000 * 3) << fast.rec.err;
  Recorded traced = record_and_replay(d, {"loop", "300"}, /*buffer=*/false);
  EXPECT_EQ(traced.buffered, 0) << traced.rec.err;
}

TEST(SyscallBuffer, TimerSignalsDuringFastCallsAreDeliveredWhereReplayFindsThem) {
  TempDir d;
  Recorded r = record_and_replay(d, {"signals", "30"});
  EXPECT_GT(r.buffered, 0) << r.rec.err;
}

TEST(SyscallBuffer, AThreadPollingTheClockGivesTheTurnToTheThreadItWaitsFor) {
  TempDir d;
  Recorded r = record_and_replay(d, {"wait"});
  EXPECT_NE(r.rec.out.find("wait polled"), std::string::npos) << r.rec.out;
  EXPECT_GT(r.buffered, 0) << r.rec.err;
}

TEST(SyscallBuffer, ThreadsShareTheBufferOneAtATime) {
  TempDir d;
  Recorded r = record_and_replay(d, {"threads", "2000"});
  EXPECT_GT(r.buffered, 0) << r.rec.err;
}

TEST(SyscallBuffer, AProgramThatScribblesOverTheBufferEndsTheRecordingWithAClearError) {
  TempDir d;
  RunResult rec = run({relive_bin(), "record", "-o", d / "t", "--", subject(), "scribble"}, 120);
  EXPECT_NE(rec.exit_code, 0);
  EXPECT_NE(rec.err.find("syscall buffer"), std::string::npos) << rec.err;
  EXPECT_EQ(rec.out.find("clock read after the scribble"), std::string::npos) << rec.out;
}

}  // namespace
}  // namespace relive::testing
