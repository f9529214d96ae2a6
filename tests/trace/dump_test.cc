#include "trace/dump.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "trace/event_format.h"
#include "trace/event_log_writer.h"
#include "trace/test_samples.h"
#include "trace/trace_dir.h"
#include "trace/trace_writer.h"
#include "wire/event_codec.h"

namespace relive::trace {
namespace {

using testing::sample_events;
using testing::sample_header;
using testing::TempDir;

// Writes the sample header and events, one segment per event, so a damaged segment in the
// middle still leaves earlier events readable.
void write_trace(const std::string& dir) {
  ASSERT_TRUE(write_header(dir, sample_header()).ok());
  auto w = EventLogWriter::create(events_path(dir));
  for (const Event& e : sample_events()) {
    ASSERT_TRUE(w->append(wire::encode_event(e)).ok());
    ASSERT_TRUE(w->flush().ok());
  }
}

struct DumpResult {
  Status status;
  std::vector<std::string> lines;
};

DumpResult dump(const std::string& dir, bool json) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* out = open_memstream(&buf, &len);
  DumpResult r{dump_trace(dir, json, out), {}};
  std::fclose(out);
  std::istringstream in(std::string(buf, len));
  std::free(buf);
  for (std::string line; std::getline(in, line);) r.lines.push_back(line);
  return r;
}

TEST(Dump, PrintsHeaderThenOneLinePerEvent) {
  TempDir dir;
  write_trace(dir.path());
  DumpResult r = dump(dir.path(), false);
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  const std::vector<std::string> expected_events = {
      "#0 tid 4711 syscall read(3, 0x7ffd5a0c1000, 4096) = 17 [emulated] writes 1 (17 bytes)",
      "#1 tid 4712 syscall write(1, 0x555555556000, 6) = 6 [emulated] to stdout hash "
      "0x0123456789abcdef",
      "#2 tid 4711 syscall mmap(0, 8192, 5, 2, 7, 0) = 0x7f0012340000 [map_file] file "
      "0123456789abcdef0123456789abcdef",
      "#3 tid 4711 syscall open(0, 0, 0) = -2 ENOENT [native] writes 3 (301 bytes)",
      "#4 tid 4711 rdtsc = 0x1122334455667788",
      "#5 tid 4712 rdtscp = 0x2a aux 0x3",
      "#6 tid 4711 signal SIGINT",
      "#7 tid 4712 thread exit",
      "#8 tid 4711 syscall-entry futex",
      "#9 detach",
      "#10 tid 4712 preempted at ip 0x555555555340 (state feedfacecafebeef)",
      "#11 exit status 0",
  };
  ASSERT_GE(r.lines.size(), expected_events.size());
  std::vector<std::string> tail(r.lines.end() - expected_events.size(), r.lines.end());
  EXPECT_EQ(tail, expected_events);
  std::vector<std::string> head(r.lines.begin(), r.lines.end() - expected_events.size());
  EXPECT_EQ(head.front(), "format_version: " + std::to_string(trace::kFormatVersion));
  EXPECT_NE(
      std::find(head.begin(), head.end(), "argv: cat -n 'file with spaces' $'\\xff\\xfe\\x00bin'"),
      head.end());
  EXPECT_NE(std::find(head.begin(), head.end(), "initial_tid: 4711"), head.end());
  EXPECT_NE(std::find(head.begin(), head.end(), "at_random: 000102030405060708090a0b0c0d0e0f"),
            head.end());
}

TEST(Dump, JsonLinesParseAndCarryTheFields) {
  TempDir dir;
  write_trace(dir.path());
  DumpResult r = dump(dir.path(), true);
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  ASSERT_EQ(r.lines.size(), 1 + sample_events().size());
  std::vector<nlohmann::json> j;
  for (const std::string& line : r.lines) j.push_back(nlohmann::json::parse(line));
  EXPECT_EQ(j[0]["header"]["program"], "/usr/bin/cat");
  EXPECT_EQ(j[0]["header"]["argv"][2], "file with spaces");
  EXPECT_EQ(j[0]["header"]["initial_tid"], 4711);
  EXPECT_EQ(j[1]["index"], 0);
  EXPECT_EQ(j[1]["type"], "syscall");
  EXPECT_EQ(j[1]["name"], "read");
  EXPECT_EQ(j[1]["args"][1], 0x7ffd5a0c1000ull);
  EXPECT_EQ(j[1]["result"], 17);
  EXPECT_EQ(j[1]["mode"], "emulated");
  EXPECT_EQ(j[1]["writes"][0]["len"], 17);
  EXPECT_EQ(j[2]["stream"], "stdout");
  EXPECT_EQ(j[3]["file"], "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(j[5]["type"], "rdtsc");
  EXPECT_EQ(j[7]["type"], "signal");
  EXPECT_EQ(j[7]["name"], "SIGINT");
  EXPECT_EQ(j[8]["type"], "thread_exit");
  EXPECT_EQ(j[9]["type"], "syscall_entry");
  EXPECT_EQ(j[10]["type"], "detach");
  EXPECT_EQ(j[11]["type"], "preempt");
  EXPECT_EQ(j[11]["ip"], 0x555555555340ull);
  EXPECT_EQ(j[12]["type"], "process_exit");
  EXPECT_EQ(j[12]["exit_code"], 0);
  EXPECT_EQ(r.lines[1].rfind("{\"index\":0,\"type\":\"syscall\"", 0), 0u) << r.lines[1];
}

TEST(Dump, CorruptTracePrintsWhatItCanAndReturnsCorruption) {
  TempDir dir;
  write_trace(dir.path());
  std::string path = events_path(dir.path());
  std::string bytes = *read_file(path);
  bytes[bytes.size() - 5] ^= 0x01;  // inside the last segment
  ASSERT_TRUE(write_file_atomic(path, bytes).ok());
  for (bool json : {false, true}) {
    DumpResult r = dump(dir.path(), json);
    EXPECT_TRUE(r.status.is_corruption()) << r.status.to_string();
    ASSERT_FALSE(r.lines.empty());
    std::string last = r.lines.back();
    EXPECT_NE(last.find(json ? "\"index\":10" : "#10 "), std::string::npos) << last;
  }
}

TEST(Dump, MissingTraceIsNotFoundAndPrintsNothing) {
  TempDir dir;
  DumpResult r = dump(dir / "nothing", false);
  EXPECT_EQ(r.status.code(), Status::Code::kNotFound);
  EXPECT_TRUE(r.lines.empty());
}

TEST(EventFormat, AMultiThreadedCheckpointsThreadsAreShown) {
  TraceHeader h;
  h.start = StartKind::kCheckpoint;
  h.initial_tid = 100;
  h.other_threads = {{101, 201}, {105, 202}};
  EXPECT_NE(header_text(h).find("other_threads: 101 (checkpoint 201) 105 (checkpoint 202)"),
            std::string::npos)
      << header_text(h);
  auto j = nlohmann::json::parse(header_json(h));
  EXPECT_EQ(j["header"]["other_threads"][1]["recorded_tid"], 105);
  EXPECT_EQ(j["header"]["other_threads"][1]["checkpoint_tid"], 202);
  EXPECT_EQ(header_text(TraceHeader{}).find("other_threads"), std::string::npos);
}

TEST(EventFormat, UnknownSyscallShowsItsNumberAndAllArguments) {
  SyscallEvent s;
  s.tid = 1;
  s.nr = 999;
  s.args = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(event_text(0, s), "#0 tid 1 syscall syscall_999(1, 2, 3, 4, 5, 6) = 0 [emulated]");
}

TEST(EventFormat, NegativeArgumentsAndAddresses) {
  SyscallEvent s;
  s.nr = 257;  // openat
  s.args = {static_cast<uint64_t>(-100), 0x7fff0000, 0x80000, 0, 0, 0};
  s.result = -13;
  EXPECT_EQ(event_text(3, s),
            "#3 tid 0 syscall openat(-100, 0x7fff0000, 0x80000, 0) = -13 EACCES "
            "[emulated]");
}

TEST(EventFormat, SignalNames) {
  EXPECT_EQ(signal_name(SIGSEGV), "SIGSEGV");
  EXPECT_EQ(signal_name(SIGRTMIN + 2), "SIGRTMIN+2");
  EXPECT_EQ(signal_name(0), "signal 0");
  EXPECT_EQ(signal_name(200), "signal 200");
}

TEST(EventFormat, WaitStatuses) {
  EXPECT_EQ(wait_status_text(W_EXITCODE(3, 0)), "exit status 3");
  EXPECT_EQ(wait_status_text(SIGKILL), "killed by SIGKILL");
  EXPECT_EQ(wait_status_text(SIGSEGV | 0x80), "killed by SIGSEGV (core dumped)");
}

TEST(EventFormat, JsonSurvivesBytesThatAreNotUtf8) {
  TraceHeader h;
  h.program = "\xff\xfe";
  std::string line = header_json(h);
  EXPECT_TRUE(nlohmann::json::accept(line)) << line;
}

}  // namespace
}  // namespace relive::trace
