// Bad input gets a clear error and nothing is lost: corrupt, truncated, tampered and
// future-version traces; a replay that departs from the log; programs relive refuses to record.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <ctime>
#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "trace/event_log_writer.h"
#include "trace/trace_dir.h"
#include "trace/trace_reader.h"
#include "wire/event_codec.h"

namespace relive::testing {
namespace {

class ReplayErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    write_all_to(dir_ / "input.txt", std::string(20000, 'x') + "\nend\n");
    RunResult r = run({relive_bin(), "record", "-o", trace(), "--", "cat", dir_ / "input.txt"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    recorded_ = r.out;
  }
  std::string trace() const { return dir_ / "trace"; }
  RunResult replay() { return run({relive_bin(), "replay", trace()}); }
  void flip_byte(const std::string& path, long offset_from_end) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    long at = static_cast<long>(f.tellg()) - offset_from_end;
    f.seekg(at);
    char c;
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x10));
  }

  TempDir dir_;
  std::string recorded_;
};

TEST_F(ReplayErrors, IntactTraceReplays) {
  RunResult r = replay();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, recorded_);
}

TEST_F(ReplayErrors, TruncatedEventLogIsCorruption) {
  std::filesystem::resize_file(trace::events_path(trace()),
                               std::filesystem::file_size(trace::events_path(trace())) - 7);
  RunResult r = replay();
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("corruption"), std::string::npos) << r.err;
}

TEST_F(ReplayErrors, FlippedBitInEventLogIsCorruption) {
  flip_byte(trace::events_path(trace()), 20);
  RunResult r = replay();
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("corruption"), std::string::npos) << r.err;
  RunResult d = run({relive_bin(), "dump", trace()});
  EXPECT_EQ(d.exit_code, 125);
  EXPECT_NE(d.err.find("corruption"), std::string::npos) << d.err;
}

TEST_F(ReplayErrors, WrongMagicIsRejected) {
  std::fstream f(trace::header_path(trace()), std::ios::in | std::ios::out | std::ios::binary);
  f.write("NOTATRCE", 8);
  f.close();
  RunResult r = replay();
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("magic"), std::string::npos) << r.err;
}

TEST_F(ReplayErrors, FutureVersionIsRejectedByName) {
  std::fstream f(trace::header_path(trace()), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(8);
  uint32_t v = 99;
  f.write(reinterpret_cast<const char*>(&v), 4);
  f.close();
  RunResult r = replay();
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("version"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("99"), std::string::npos) << r.err;
}

TEST_F(ReplayErrors, MissingHeaderIsNotFound) {
  std::filesystem::remove(trace::header_path(trace()));
  RunResult r = replay();
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
}

TEST_F(ReplayErrors, TamperedSavedLibraryIsCorruption) {
  for (const auto& e : std::filesystem::directory_iterator(trace::files_dir(trace()))) {
    std::filesystem::permissions(e.path(), std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::add);
    flip_byte(e.path(), 100);
  }
  RunResult r = replay();
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("checksum"), std::string::npos) << r.err;
}

// A valid trace whose log says the file ended early: the program then closes the file where the
// log expects it to write, and replay must stop right there with a report.
TEST_F(ReplayErrors, DivergenceIsReportedWithEventIndexAndBothCalls) {
  auto reader = trace::TraceReader::open(trace());
  ASSERT_TRUE(reader.ok()) << reader.status().to_string();
  std::vector<trace::Event> events;
  for (;;) {
    auto e = reader->next();
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    if (!*e) break;
    events.push_back(**e);
  }
  bool changed = false;
  for (trace::Event& e : events) {
    auto* s = std::get_if<trace::SyscallEvent>(&e);
    if (s && s->nr == 0 /*read*/ && s->result > 1000 && !changed) {
      s->result = 0;  // "end of file" instead of data
      s->writes.clear();
      changed = true;
    }
  }
  ASSERT_TRUE(changed);
  auto w = trace::EventLogWriter::create(trace::events_path(trace()));
  ASSERT_TRUE(w.ok());
  for (const trace::Event& e : events) ASSERT_TRUE(w->append(wire::encode_event(e)).ok());
  ASSERT_TRUE(w->sync().ok());

  RunResult r = replay();
  EXPECT_EQ(r.exit_code, 126);
  EXPECT_NE(r.err.find("divergence: at event #"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expected "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the program called close("), std::string::npos) << r.err;
}

std::vector<trace::Event> read_events(const std::string& trace) {
  std::vector<trace::Event> events;
  auto reader = trace::TraceReader::open(trace);
  EXPECT_TRUE(reader.ok()) << reader.status().to_string();
  if (!reader.ok()) return events;
  for (;;) {
    auto e = reader->next();
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    if (!e.ok() || !*e) break;
    events.push_back(**e);
  }
  return events;
}

void write_events(const std::string& trace, const std::vector<trace::Event>& events) {
  auto w = trace::EventLogWriter::create(trace::events_path(trace));
  ASSERT_TRUE(w.ok());
  for (const trace::Event& e : events) ASSERT_TRUE(w->append(wire::encode_event(e)).ok());
  ASSERT_TRUE(w->sync().ok());
}

// Events the replay never reaches (here the program's last write, logged again after the exit)
// are a log the replay did not honour: an error, never a success with part of the output.
TEST_F(ReplayErrors, EventsAfterTheExitAreReportedNotDropped) {
  std::vector<trace::Event> events = read_events(trace());
  ASSERT_GE(events.size(), 2u);
  ASSERT_TRUE(std::holds_alternative<trace::ProcessExitEvent>(events.back()));
  const trace::SyscallEvent* last_write = nullptr;
  for (const trace::Event& e : events)
    if (auto* s = std::get_if<trace::SyscallEvent>(&e); s && s->nr == 1 /*write*/) last_write = s;
  ASSERT_NE(last_write, nullptr);
  trace::SyscallEvent extra = *last_write;
  events.push_back(extra);
  write_events(trace(), events);

  RunResult r = replay();
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("events after the recorded processes' exit"), std::string::npos) << r.err;
}

// A log whose processes all exit while replayed threads still wait at syscalls it never
// completes (two threads parked at their logged entries, then the exit): nothing would ever move
// them, so the replay reports where they stopped instead of waiting for ever.
TEST(ReplayStuck, ThreadsLeftAtTheirEntriesWhenTheLogEndsAreADivergenceNotAHang) {
  TempDir d;
  RunResult r = run({relive_bin(), "record", "-o", d / "t", "--",
                     test_bin_dir() + "/subjects/threads_counter", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<trace::Event> events = read_events(d / "t");
  ASSERT_TRUE(std::holds_alternative<trace::ProcessExitEvent>(events.back()));
  trace::Event exit = events.back();
  // The first two entries in a row of two different threads: both are parked there.
  size_t cut = 0;
  for (size_t i = 1; i < events.size() && cut == 0; ++i) {
    auto* a = std::get_if<trace::SyscallEntryEvent>(&events[i - 1]);
    auto* b = std::get_if<trace::SyscallEntryEvent>(&events[i]);
    if (a && b && a->tid != b->tid) cut = i + 1;
  }
  ASSERT_NE(cut, 0u) << "no two threads waiting at once in this recording";
  events.resize(cut);
  events.push_back(exit);
  write_events(d / "t", events);

  RunResult rep = run({relive_bin(), "replay", d / "t"}, 90);
  EXPECT_NE(rep.exit_code, 0) << rep.out;
  EXPECT_NE(rep.err.find("every process to be gone"), std::string::npos) << rep.err;
  EXPECT_NE(rep.err.find("futex"), std::string::npos) << "names the call it waits at: " << rep.err;
}

// A shared writable mapping nobody outside the recording holds is recorded (its saved copy) and
// replayed from a working copy: the replay writes through it without touching the real file.
TEST(RecordRefuses, NotASharedWritableMappingHeldByNoOneElse) {
  TempDir d;
  write_all_to(d / "shared", std::string(4096, '0'));
  RunResult r = run({relive_bin(), "record", "-o", d / "t", "--", "/usr/bin/python3", "-c",
                     "import mmap,sys; f=open(sys.argv[1],'r+b'); m=mmap.mmap(f.fileno(),4096); "
                     "m[0:1]=b'1'; m.flush(); print('mapped', m[0:2])",
                     d / "shared"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "mapped b'10'\n");
  EXPECT_EQ(read_all(d / "shared"), "1" + std::string(4095, '0'));
  write_all_to(d / "shared", std::string(4096, 'x'));
  RunResult rep = run({relive_bin(), "replay", d / "t"});
  EXPECT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(rep.out, r.out) << "replay maps the contents the recording saw";
  EXPECT_EQ(read_all(d / "shared"), std::string(4096, 'x')) << "replay wrote to the real file";
}

TEST(RecordRefuses, ScriptsWhoseInterpreterIsAScript) {
  TempDir d;
  write_all_to(d / "inner", "#!/bin/sh\necho inner\n");
  write_all_to(d / "outer", "#!" + (d / "inner") + "\necho outer\n");
  std::filesystem::permissions(d / "inner", std::filesystem::perms::owner_all);
  std::filesystem::permissions(d / "outer", std::filesystem::perms::owner_all);
  RunResult r = run({relive_bin(), "record", "-o", d / "t", "--", d / "outer"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("is itself a script"), std::string::npos) << r.err;
}

TEST(RecordRefuses, ANonEmptyTraceDirectory) {
  TempDir d;
  write_all_to(d / "keep", "precious");
  RunResult r = run({relive_bin(), "record", "-o", d.path(), "--", "true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(read_all(d / "keep"), "precious");
}

// A clock call the replayed program takes from its syscall buffer (tracee/syscall_buffer.h)
// without a stop is checked as a traced one is: the log here says CLOCK_BOOTTIME where the program
// asks for CLOCK_MONOTONIC, in the middle of a run of such calls, and the replay stops right at
// that event with both calls.
TEST(ReplayDivergence, ACallTakenFromTheSyscallBufferIsCheckedLikeATracedOne) {
  TempDir d;
  std::string trace = d / "trace";
  RunResult rec = run({relive_bin(), "record", "-o", trace, "--",
                       test_bin_dir() + "/subjects/clock_calls", "loop", "50"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  std::vector<trace::Event> events = read_events(trace);
  size_t at = 0, seen = 0;
  for (size_t i = 0; i < events.size() && at == 0; ++i) {
    auto* s = std::get_if<trace::SyscallEvent>(&events[i]);
    if (s && s->nr == SYS_clock_gettime && s->args[0] == CLOCK_MONOTONIC && ++seen == 40) at = i;
  }
  ASSERT_NE(at, 0u);
  std::get<trace::SyscallEvent>(events[at]).args[0] = CLOCK_BOOTTIME;
  write_events(trace, events);
  RunResult r = run({relive_bin(), "replay", trace});
  EXPECT_EQ(r.exit_code, 126) << r.err;
  EXPECT_NE(r.err.find(fmt::format("divergence: at event #{} ", at)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fmt::format("expected clock_gettime({:#x}, ", CLOCK_BOOTTIME)),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(fmt::format("the program called clock_gettime({:#x}, ", CLOCK_MONOTONIC)),
            std::string::npos)
      << r.err;
}

// Records the byte_calls subject in `mode` (through patched sites) and returns the trace's events.
std::vector<trace::Event> record_site_calls(const std::string& trace, const std::string& mode) {
  RunResult rec = run({relive_bin(), "record", "-o", trace, "--",
                       test_bin_dir() + "/subjects/byte_calls", mode, "50"});
  EXPECT_EQ(rec.exit_code, 0) << rec.err;
  return read_events(trace);
}

// The index of the `nth` (from 1) syscall event numbered `nr`; 0 when there is none.
size_t nth_call(const std::vector<trace::Event>& events, int nr, int nth) {
  for (size_t i = 0; i < events.size(); ++i) {
    auto* s = std::get_if<trace::SyscallEvent>(&events[i]);
    if (s && s->nr == nr && --nth == 0) return i;
  }
  return 0;
}

// A call of a patched site, replayed from the buffer, is compared with the log as a traced one:
// number, every argument, and the bytes a write sent.
TEST(ReplayDivergence, ACallOfAPatchedSiteIsCheckedLikeATracedOne) {
  TempDir d;
  std::vector<trace::Event> events = record_site_calls(d / "args", "calls");
  size_t at = nth_call(events, SYS_lseek, 30);
  ASSERT_NE(at, 0u);
  std::get<trace::SyscallEvent>(events[at]).args[1] += 100;  // another offset
  write_events(d / "args", events);
  RunResult r = run({relive_bin(), "replay", d / "args"});
  EXPECT_EQ(r.exit_code, 126) << r.err;
  EXPECT_NE(r.err.find(fmt::format("divergence: at event #{} ", at)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expected lseek("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the program called lseek("), std::string::npos) << r.err;

  events = record_site_calls(d / "bytes", "calls");
  at = nth_call(events, SYS_writev, 30);
  ASSERT_NE(at, 0u);
  std::get<trace::SyscallEvent>(events[at]).data_hash ^= 1;  // other bytes went out
  write_events(d / "bytes", events);
  r = run({relive_bin(), "replay", d / "bytes"});
  EXPECT_EQ(r.exit_code, 126) << r.err;
  EXPECT_NE(r.err.find(fmt::format("divergence: at event #{} ", at)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the recorded output bytes"), std::string::npos) << r.err;
}

// A site patch the recorder could not have made (another address, a stub elsewhere) is refused
// with a clear error; the replay does not write code the recording never ran.
TEST(ReplayErrorsSitePatch, APatchTheRecorderCouldNotHaveMadeIsRefused) {
  TempDir d;
  for (int how = 0; how < 2; ++how) {
    std::string trace = d / ("t" + std::to_string(how));
    std::vector<trace::Event> events = record_site_calls(trace, "file");
    bool changed = false;
    for (trace::Event& e : events) {
      auto* p = std::get_if<trace::SitePatchEvent>(&e);
      if (p == nullptr || changed) continue;
      if (how == 0) p->site += 1;         // not a syscall site
      if (how == 1) p->stub += 4096 * 3;  // not where the recorder puts stubs
      changed = true;
    }
    ASSERT_TRUE(changed);
    write_events(trace, events);
    RunResult r = run({relive_bin(), "replay", trace});
    EXPECT_NE(r.exit_code, 0) << how;
    EXPECT_NE(r.err.find("site"), std::string::npos) << how << ": " << r.err;
    EXPECT_EQ(r.err.find("Segmentation"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace relive::testing
