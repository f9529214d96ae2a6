// Golden traces: a trace written by each released format version, checked in under
// tests/data/golden/v<N>/, must keep decoding to exactly what was written. Also writes the
// libFuzzer seed corpus (tests/data/fuzz_seeds/), built from the same samples.
//
// To (re)generate the files of the CURRENT version only:
//   RELIVE_REGENERATE_GOLDEN=1 build/tests/trace_golden_test
// Files of older versions are never rewritten: they are what old relives produced.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "trace/event_log_writer.h"
#include "trace/trace_dir.h"
#include "trace/trace_reader.h"
#include "trace/trace_writer.h"
#include "wire/event_codec.h"
#include "wire/header_codec.h"
#include "wire/segment.h"

namespace relive::trace {
namespace {

namespace fs = std::filesystem;

fs::path data_dir() {
  if (const char* src = std::getenv("RELIVE_SOURCE")) return fs::path(src) / "tests" / "data";
  return fs::path(RELIVE_SOURCE_DIR) / "tests" / "data";
}

bool regenerate() { return std::getenv("RELIVE_REGENERATE_GOLDEN") != nullptr; }

// Frozen: the contents of tests/data/golden/v1. Never edit; add v2 expectations instead.
TraceHeader v1_header() {
  TraceHeader h;
  h.version = 1;
  h.program = "/usr/bin/printf";
  h.argv = {"printf", "%s\\n", "hi there"};
  h.env = {"PATH=/usr/bin", "HOME=/root"};
  h.cwd = "/tmp";
  h.exe_copy = "6b1e2d4c0a9f88e1d2c3b4a596877869";
  h.interp_path = "/lib64/ld-linux-x86-64.so.2";
  h.interp_copy = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
  h.at_random_addr = 0x7ffe4a3b2c1d;
  h.at_random = "0123456789abcdef";
  h.initial_tid = 1234;
  h.hostname = "golden";
  h.kernel = "Linux 6.1.0";
  h.start_realtime_ns = 1700000000000000000;
  return h;
}

SyscallEvent syscall(int nr, std::array<uint64_t, 6> args, int64_t result, SyscallMode mode) {
  SyscallEvent s;
  s.tid = 1234;
  s.nr = nr;
  s.args = args;
  s.result = result;
  s.mode = mode;
  return s;
}

std::vector<Event> v1_events() {
  SyscallEvent read = syscall(0, {3, 0x7ffe00001000, 4096, 0, 0, 0}, 5, SyscallMode::kEmulated);
  read.writes = {{0x7ffe00001000, "hello"}};
  SyscallEvent write = syscall(1, {1, 0x5600000000, 9, 0, 0, 0}, 9, SyscallMode::kEmulated);
  write.stream = Stream::kStdout;
  write.data_hash = 0xfeedfacecafebeefull;
  SyscallEvent mmap = syscall(9, {0, 4096, 1, 2, 3, 0}, 0x7f0000000000, SyscallMode::kMapFile);
  mmap.file = "6b1e2d4c0a9f88e1d2c3b4a596877869";
  SyscallEvent brk = syscall(12, {}, 0x560000021000, SyscallMode::kNative);
  return {read,
          write,
          mmap,
          brk,
          RdtscEvent{1234, 0x123456789, 0, false},
          RdtscEvent{1235, 0x12345678a, 1, true},
          SignalEvent{1234, 10, std::string(128, '\x2a')},
          SyscallEntryEvent{1235, 202},
          ThreadExitEvent{1235},
          DetachEvent{},
          ProcessExitEvent{0}};
}

// Two segments, so that the golden log also covers sequence numbering.
void write_v1(const std::string& dir) {
  ASSERT_TRUE(remove_tree(dir).ok());
  ASSERT_TRUE(write_header(dir, v1_header()).ok());
  auto w = EventLogWriter::create(events_path(dir));
  std::vector<Event> events = v1_events();
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_TRUE(w->append(wire::encode_event(events[i])).ok());
    if (i == 4) {
      ASSERT_TRUE(w->flush().ok());
    }
  }
  ASSERT_TRUE(w->sync().ok());
}

void write_seed(const fs::path& dir, const std::string& name, char mode, std::string bytes) {
  ASSERT_TRUE(write_file_atomic((dir / name).string(), std::string(1, mode) + bytes).ok());
}

// Seeds for tests/fuzz/trace_reader_fuzz.cc; the first byte selects its mode.
void write_seeds(const fs::path& dir) {
  ASSERT_TRUE(make_dirs(dir.string()).ok());
  std::string header = wire::encode_header(v1_header());
  std::vector<std::string> events;
  for (const Event& e : v1_events()) events.push_back(wire::encode_event(e));
  std::string log = wire::encode_segment(0, {events.begin(), events.begin() + 5}) +
                    wire::encode_segment(1, {events.begin() + 5, events.end()});
  std::string raw;
  for (const std::string& e : events) wire::append_event_to_payload(&raw, e);
  std::string count(4, '\0');
  count[0] = static_cast<char>(events.size());
  write_seed(dir, "header", 0, header);
  for (size_t i = 0; i < events.size(); ++i) {
    write_seed(dir, "event_" + std::to_string(i), 1, events[i]);
  }
  write_seed(dir, "log_chunked", 2, std::string(1, '\x07') + log);
  write_seed(dir, "log_fixed", 3, log);
  write_seed(dir, "payload", 4, count + raw);
  write_seed(dir, "header_fixed", 5, header);
}

TEST(GoldenTrace, Version1StillReads) {
  std::string dir = (data_dir() / "golden" / "v1").string();
  if (regenerate() && kFormatVersion == 1) write_v1(dir);
  auto reader = TraceReader::open(dir);
  ASSERT_TRUE(reader.ok()) << reader.status().to_string();
  EXPECT_EQ(reader->header(), v1_header());
  std::vector<Event> events;
  for (;;) {
    auto r = reader->next();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    if (!r->has_value()) break;
    events.push_back(std::move(**r));
  }
  EXPECT_EQ(events, v1_events());
}

TEST(GoldenTrace, FuzzSeedsArePresent) {
  fs::path dir = data_dir() / "fuzz_seeds";
  if (regenerate()) write_seeds(dir);
  int seeds = 0;
  for (const auto& entry : fs::directory_iterator(dir)) seeds += entry.is_regular_file();
  EXPECT_GE(seeds, 10);
  auto header = read_file((dir / "header").string());
  ASSERT_TRUE(header.ok());
  EXPECT_TRUE(wire::decode_header(header->substr(1)).ok()) << "seed must be a valid header";
}

}  // namespace
}  // namespace relive::trace
