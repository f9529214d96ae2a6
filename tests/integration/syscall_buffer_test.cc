// The fast path (tracee/syscall_buffer.h): the vDSO's clock calls of a program recorded from
// exec are logged by the program itself, and at replay taken by the program from the buffer the
// replayer fills, and the trace replays exactly as one recorded with every call traced: a clock
// loop, a timer signal interrupting it, a thread polling the clock until another thread runs, two
// threads sharing the buffer, the same calls made without the vDSO, and a program that scribbles
// over the buffer. And the calls of the glibc syscall sites the recorder patches
// (tracee/syscall_sites.h): reads and writes on a file, on a pipe a reader blocks on, with a timer
// signal whose handler writes through the same site, beside the same calls made without glibc;
// the stat, socket, poll, query and id calls; a thread waiting in poll, epoll_wait and recv
// while the thread it waits for must run; and writes told apart across a close and an open.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "test_util.h"

namespace relive::testing {
namespace {

std::string subject() { return test_bin_dir() + "/subjects/clock_calls"; }
std::string byte_subject() { return test_bin_dir() + "/subjects/byte_calls"; }

// The count the recorder and the replayer log at debug level: "N syscalls (M through the syscall
// buffer)", "N events (M through ...)".
long buffered_count(const std::string& err) {
  size_t at = err.find(" through the syscall buffer");
  if (at == std::string::npos) return -1;
  size_t open = err.rfind('(', at);
  return open == std::string::npos ? -1 : std::strtol(err.c_str() + open + 1, nullptr, 10);
}

struct Recorded {
  RunResult rec;
  long buffered = -1;
  long replay_buffered = -1;  // calls the replayed program took from the buffer
};

// Records the subject, replays the trace and checks the replay prints what the recording did.
Recorded record_and_replay(const TempDir& d, const std::vector<std::string>& args,
                           bool buffer = true, const std::string& program = subject()) {
  std::string trace = d / (buffer ? "fast" : "traced");
  std::vector<std::string> rec = {"/usr/bin/env", "RELIVE_LOG=debug", relive_bin(), "record", "-o",
                                  trace};
  if (!buffer) rec.push_back("--no-syscall-buffer");
  rec.push_back("--");
  rec.push_back(program);
  rec.insert(rec.end(), args.begin(), args.end());
  Recorded out;
  out.rec = run(rec, 300);
  EXPECT_EQ(out.rec.exit_code, 0) << out.rec.err;
  EXPECT_FALSE(out.rec.out.empty());
  out.buffered = buffered_count(out.rec.err);
  RunResult rep = run({"/usr/bin/env", "RELIVE_LOG=debug", relive_bin(), "replay", trace}, 300);
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, out.rec.out);
  out.replay_buffered = buffered_count(rep.err);
  return out;
}

// Replays `trace` with every call through a stop: it must print `out`, with nothing buffered.
void expect_traced_replay_prints(const std::string& trace, const std::string& out) {
  RunResult rep = run(
      {"/usr/bin/env", "RELIVE_LOG=debug", relive_bin(), "replay", "--no-syscall-buffer", trace},
      300);
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, out);
  EXPECT_EQ(buffered_count(rep.err), 0) << rep.err;
}

TEST(SyscallBuffer, AClockLoopIsLoggedByTheProgramAndReplaysExactly) {
  TempDir d;
  Recorded fast = record_and_replay(d, {"loop", "3000"});
  // 4 fast calls a round; the traced forms (every 7th round) and the first calls are not.
  EXPECT_GT(fast.buffered, 3000 * 3) << fast.rec.err;
  EXPECT_GT(fast.replay_buffered, 3000 * 3);
  // However it was recorded: a trace of traced clock calls replays through the buffer too.
  Recorded traced = record_and_replay(d, {"loop", "300"}, /*buffer=*/false);
  EXPECT_EQ(traced.buffered, 0) << traced.rec.err;
  EXPECT_GT(traced.replay_buffered, 300 * 3);
  // And replayed with every call through a stop, the same trace prints the same.
  expect_traced_replay_prints(d / "fast", fast.rec.out);
}

TEST(SyscallBuffer, TimerSignalsDuringFastCallsAreDeliveredWhereReplayFindsThem) {
  TempDir d;
  Recorded r = record_and_replay(d, {"signals", "30"});
  EXPECT_GT(r.buffered, 0) << r.rec.err;
  EXPECT_GT(r.replay_buffered, 0);
}

TEST(SyscallBuffer, AThreadPollingTheClockGivesTheTurnToTheThreadItWaitsFor) {
  TempDir d;
  Recorded r = record_and_replay(d, {"wait"});
  EXPECT_NE(r.rec.out.find("wait polled"), std::string::npos) << r.rec.out;
  EXPECT_GT(r.buffered, 0) << r.rec.err;
  EXPECT_GT(r.replay_buffered, 0);
}

TEST(SyscallBuffer, ThreadsShareTheBufferOneAtATime) {
  TempDir d;
  Recorded r = record_and_replay(d, {"threads", "2000"});
  EXPECT_GT(r.buffered, 0) << r.rec.err;
  EXPECT_GT(r.replay_buffered, 0);
}

// The same clock calls made with syscall(2) are logged exactly like the vDSO's, but no
// trampoline sees them at replay: the replayer answers them at their stop from the entries it
// prefilled, and the rest of the buffer is taken as usual.
TEST(SyscallBuffer, ClockCallsMadeWithoutTheVdsoAmongBufferedOnesReplayExactly) {
  TempDir d;
  Recorded fast = record_and_replay(d, {"direct", "2000"});
  EXPECT_GE(fast.buffered, 2000 * 2 - 2) << fast.rec.err;
  EXPECT_GT(fast.replay_buffered, 2000 * 2 - 100);  // those at the ends of runs stop
}

TEST(SyscallBuffer, AProgramThatScribblesOverTheBufferEndsTheRecordingWithAClearError) {
  TempDir d;
  RunResult rec = run({relive_bin(), "record", "-o", d / "t", "--", subject(), "scribble"}, 120);
  EXPECT_NE(rec.exit_code, 0);
  EXPECT_NE(rec.err.find("syscall buffer"), std::string::npos) << rec.err;
  EXPECT_EQ(rec.out.find("clock read after the scribble"), std::string::npos) << rec.out;
}

// The sites a trace patched, from `relive dump`.
size_t patched_sites(const std::string& trace) {
  RunResult dump = run({relive_bin(), "dump", trace}, 120);
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  size_t n = 0;
  for (size_t at = 0; (at = dump.out.find("patched syscall site", at)) != std::string::npos; ++at)
    ++n;
  return n;
}

// Runs the byte_calls subject natively, then records and replays it: the recording must print
// what the native run did (the subject's digests are deterministic in these modes).
Recorded record_like_native(const TempDir& d, const std::vector<std::string>& args) {
  std::vector<std::string> native_argv{byte_subject()};
  native_argv.insert(native_argv.end(), args.begin(), args.end());
  RunResult native = run(native_argv, 120);
  EXPECT_EQ(native.exit_code, 0) << native.err;
  Recorded r = record_and_replay(d, args, true, byte_subject());
  EXPECT_EQ(r.rec.out, native.out);
  return r;
}

TEST(SyscallBuffer, ByteCallsOfPatchedSitesAreLoggedByTheProgramAndReplayExactly) {
  TempDir d;
  Recorded fast = record_like_native(d, {"file", "2000"});
  EXPECT_GT(patched_sites(d / "fast"), 0u);
  // Two calls a round after the first few; the 300 KiB write and read go traced.
  EXPECT_GT(fast.buffered, 2000 * 2 - 100) << fast.rec.err;
  EXPECT_GT(fast.replay_buffered, 2000 * 2 - 200);
  // Replayed with every call through a stop, the patched trace prints the same.
  expect_traced_replay_prints(d / "fast", fast.rec.out);
  // Recorded without the fast path, nothing is patched.
  Recorded traced = record_and_replay(d, {"file", "300"}, /*buffer=*/false, byte_subject());
  EXPECT_EQ(traced.buffered, 0) << traced.rec.err;
  EXPECT_EQ(patched_sites(d / "traced"), 0u);
}

TEST(SyscallBuffer, AReaderBlockedOnAnEmptyPipeGivesTheTurnToItsWriter) {
  TempDir d;
  Recorded r = record_like_native(d, {"pipe", "3000"});
  EXPECT_GT(r.buffered, 1000) << r.rec.err;
  EXPECT_GT(r.replay_buffered, 1000);
}

TEST(SyscallBuffer, TimerSignalsDuringByteCallsAreDeliveredWhereReplayFindsThem) {
  TempDir d;
  Recorded r = record_and_replay(d, {"signals", "40"}, true, byte_subject());
  EXPECT_NE(r.rec.out.find("signals: 40 ticks"), std::string::npos) << r.rec.out;
  EXPECT_GT(r.buffered, 0) << r.rec.err;
  EXPECT_GT(r.replay_buffered, 0);
}

// The same calls made with a `syscall` instruction of the program's own reach no patched site:
// traced at record, and at replay answered at their stop among the buffered ones.
TEST(SyscallBuffer, ByteCallsMadeWithoutGlibcAmongBufferedOnesReplayExactly) {
  TempDir d;
  Recorded r = record_like_native(d, {"raw", "2000"});
  EXPECT_GT(r.buffered, 2000 * 2 - 100) << r.rec.err;
  EXPECT_LT(r.buffered, 2000 * 3) << r.rec.err;  // the program's own ones stopped
  EXPECT_GT(r.replay_buffered, 2000 * 2 - 100);
}

// The calls beyond reads and writes, each made the same way every round: all but the first of
// each (which is traced and patches its site) are logged by the program, and the replay gives
// back what differs from run to run (ids, inode numbers, random bytes) as recorded.
TEST(SyscallBuffer, TheOtherCallsOfPatchedSitesAreLoggedByTheProgramAndReplayExactly) {
  TempDir d;
  RunResult native = run({byte_subject(), "calls", "500"}, 120);
  ASSERT_EQ(native.exit_code, 0) << native.err;
  Recorded r = record_and_replay(d, {"calls", "500"}, true, byte_subject());
  // The first line is the same in every run; the second is the recording's own.
  EXPECT_EQ(r.rec.out.substr(0, r.rec.out.find('\n')), native.out.substr(0, native.out.find('\n')));
  EXPECT_GT(patched_sites(d / "fast"), 10u);
  // 30 calls a round, all through patched sites but the first of each.
  EXPECT_GT(r.buffered, 500 * 29) << r.rec.err;
  EXPECT_GT(r.replay_buffered, 500 * 29);
  expect_traced_replay_prints(d / "fast", r.rec.out);
}

// A thread waiting in poll, epoll_wait or recv with no timeout: the fast path finds nothing ready
// and the call goes traced, where it may wait while the main thread gets the turn and writes.
TEST(SyscallBuffer, AThreadWaitingInPollOrEpollGivesTheTurnToItsWriter) {
  TempDir d;
  Recorded r = record_like_native(d, {"waits", "300"});
  EXPECT_NE(r.rec.out.find("waits: 300 rounds"), std::string::npos) << r.rec.out;
  EXPECT_GT(r.buffered, 300) << r.rec.err;
  EXPECT_GT(r.replay_buffered, 300);
}

// A descriptor closed and opened again through the fast path between two of its writes: the
// recorder tells which write went to its stdout by the files the fast path logged with the close
// and the open, so the replay prints exactly the lines the program printed.
TEST(SyscallBuffer, WritesAreToldApartWhenTheirDescriptorIsClosedAndOpenedInBetween) {
  TempDir d;
  Recorded r = record_like_native(d, {"streams", "300"});
  EXPECT_NE(r.rec.out.find("to stdout 299\n"), std::string::npos) << r.rec.out;
  EXPECT_EQ(r.rec.out.find("to the file"), std::string::npos) << r.rec.out;
  EXPECT_GT(r.buffered, 300 * 3) << r.rec.err;  // the writes, the closes, the opens
}

}  // namespace
}  // namespace relive::testing
