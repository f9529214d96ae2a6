#include "trace/trace_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/file_util.h"
#include "trace/event_log_writer.h"
#include "trace/test_samples.h"
#include "trace/trace_dir.h"
#include "trace/trace_writer.h"
#include "wire/event_codec.h"
#include "wire/header_codec.h"
#include "wire/segment.h"

namespace relive::trace {
namespace {

using testing::sample_events;
using testing::sample_header;
using testing::TempDir;

// Writes a trace: the sample header and `segments` segments of the sample events.
void write_trace(const std::string& dir, int segments = 1) {
  ASSERT_TRUE(write_header(dir, sample_header()).ok());
  auto w = EventLogWriter::create(events_path(dir));
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  for (int s = 0; s < segments; ++s) {
    for (const Event& e : sample_events()) ASSERT_TRUE(w->append(wire::encode_event(e)).ok());
    ASSERT_TRUE(w->flush().ok());
  }
}

// Reads every event; returns the final status (Ok at a clean end).
Status read_all(TraceReader& reader, std::vector<Event>* events) {
  for (;;) {
    auto r = reader.next();
    if (!r.ok()) return r.status();
    if (!r->has_value()) return Status::Ok();
    events->push_back(std::move(**r));
  }
}

bool contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

TEST(TraceReader, RoundTripsHeaderAndEvents) {
  TempDir dir;
  write_trace(dir.path(), 2);
  auto reader = TraceReader::open(dir.path());
  ASSERT_TRUE(reader.ok()) << reader.status().to_string();
  EXPECT_EQ(reader->header(), sample_header());
  std::vector<Event> events;
  ASSERT_TRUE(read_all(*reader, &events).ok());
  std::vector<Event> expected = sample_events();
  std::vector<Event> second = sample_events();
  expected.insert(expected.end(), second.begin(), second.end());
  EXPECT_EQ(events, expected);
  EXPECT_EQ(reader->events_read(), expected.size());
  EXPECT_FALSE(reader->next()->has_value()) << "the end stays the end";
}

TEST(TraceReader, ReadsLogsLargerThanOneChunk) {
  TempDir dir;
  ASSERT_TRUE(write_header(dir.path(), sample_header()).ok());
  auto w = EventLogWriter::create(events_path(dir.path()));
  SyscallEvent e;
  e.writes = {{0x1000, std::string(3000, 'q')}};
  const int n = 3000;  // ~9 MB raw; incompressible enough to span several 1 MiB reads
  for (int i = 0; i < n; ++i) {
    e.result = i;
    e.writes[0].data[i % 3000] = static_cast<char>(i);
    ASSERT_TRUE(w->append(wire::encode_event(e)).ok());
  }
  ASSERT_TRUE(w->sync().ok());
  auto reader = TraceReader::open(dir.path());
  std::vector<Event> events;
  ASSERT_TRUE(read_all(*reader, &events).ok());
  ASSERT_EQ(events.size(), static_cast<size_t>(n));
  EXPECT_EQ(std::get<SyscallEvent>(events[n - 1]).result, n - 1);
}

TEST(TraceReader, EmptyLogIsACleanEnd) {
  TempDir dir;
  ASSERT_TRUE(write_header(dir.path(), sample_header()).ok());
  ASSERT_TRUE(EventLogWriter::create(events_path(dir.path())).ok());
  auto reader = TraceReader::open(dir.path());
  ASSERT_TRUE(reader.ok());
  auto r = reader->next();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST(TraceReader, MissingHeaderIsNotFound) {
  TempDir dir;
  auto reader = TraceReader::open(dir.path());
  EXPECT_EQ(reader.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(contains(reader.status(), header_path(dir.path())));
}

TEST(TraceReader, MissingEventsIsNotFound) {
  TempDir dir;
  ASSERT_TRUE(write_header(dir.path(), sample_header()).ok());
  auto reader = TraceReader::open(dir.path());
  EXPECT_EQ(reader.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(contains(reader.status(), events_path(dir.path())));
}

TEST(TraceReader, CorruptHeaderIsCorruption) {
  TempDir dir;
  write_trace(dir.path());
  std::string bytes = *read_file(header_path(dir.path()));
  bytes[bytes.size() - 3] ^= 1;
  ASSERT_TRUE(write_file_atomic(header_path(dir.path()), bytes).ok());
  EXPECT_TRUE(TraceReader::open(dir.path()).status().is_corruption());
}

TEST(TraceReader, NotATraceIsCorruption) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(header_path(dir.path()), "#!/bin/sh\necho hi\n").ok());
  auto reader = TraceReader::open(dir.path());
  ASSERT_TRUE(reader.status().is_corruption());
  EXPECT_TRUE(contains(reader.status(), "not a relive trace: bad magic"));
}

TEST(TraceReader, FutureHeaderIsVersionMismatch) {
  TempDir dir;
  write_trace(dir.path());
  std::string bytes = *read_file(header_path(dir.path()));
  bytes[8] = static_cast<char>(kFormatVersion + 1);
  ASSERT_TRUE(write_file_atomic(header_path(dir.path()), bytes).ok());
  EXPECT_EQ(TraceReader::open(dir.path()).status().code(), Status::Code::kVersionMismatch);
}

TEST(TraceReader, TruncatedFinalFrameIsCorruption) {
  TempDir dir;
  write_trace(dir.path(), 2);
  std::string path = events_path(dir.path());
  std::string bytes = *read_file(path);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(bytes.size() - 7)), 0);
  auto reader = TraceReader::open(dir.path());
  std::vector<Event> events;
  Status s = read_all(*reader, &events);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_TRUE(contains(s, "truncated segment 1")) << s.message();
  EXPECT_EQ(events.size(), sample_events().size()) << "the whole first segment is still read";
}

TEST(TraceReader, FlippedByteInLogIsCorruption) {
  TempDir dir;
  write_trace(dir.path());
  std::string path = events_path(dir.path());
  std::string bytes = *read_file(path);
  bytes[bytes.size() / 2] ^= 0x40;
  ASSERT_TRUE(write_file_atomic(path, bytes).ok());
  auto reader = TraceReader::open(dir.path());
  std::vector<Event> events;
  Status s = read_all(*reader, &events);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_TRUE(contains(s, path));
  EXPECT_TRUE(events.empty());
}

TEST(TraceReader, GarbageEventIsCorruptionAndFinal) {
  TempDir dir;
  ASSERT_TRUE(write_header(dir.path(), sample_header()).ok());
  std::vector<std::string> encoded = {wire::encode_event(sample_events()[0]),
                                      std::string(24, '\x7f'),
                                      wire::encode_event(sample_events()[1])};
  ASSERT_TRUE(write_file_atomic(events_path(dir.path()), wire::encode_segment(0, encoded)).ok());
  auto reader = TraceReader::open(dir.path());
  ASSERT_TRUE(reader->next().ok());
  Status s = reader->next().status();
  ASSERT_TRUE(s.is_corruption());
  EXPECT_TRUE(contains(s, "event #1")) << s.message();
  EXPECT_TRUE(reader->next().status().is_corruption()) << "no skipping past a bad event";
}

TEST(TraceReader, FollowsAGrowingLog) {
  TempDir dir;
  ASSERT_TRUE(write_header(dir.path(), sample_header()).ok());
  auto w = EventLogWriter::create(events_path(dir.path()));
  auto reader = TraceReader::open(dir.path());
  ASSERT_TRUE(reader.ok());
  EXPECT_FALSE(reader->next()->has_value());
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(w->append(wire::encode_event(ThreadExitEvent{round})).ok());
    ASSERT_TRUE(w->flush().ok());
    auto r = reader->next();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ(std::get<ThreadExitEvent>(**r).tid, round);
    EXPECT_FALSE(reader->next()->has_value());
  }
}

TEST(TraceReader, HalfWrittenFrameBecomesReadableOnceComplete) {
  TempDir dir;
  ASSERT_TRUE(write_header(dir.path(), sample_header()).ok());
  std::string frame = wire::encode_segment(0, {wire::encode_event(ProcessExitEvent{0})});
  std::string path = events_path(dir.path());
  ASSERT_TRUE(write_file_atomic(path, frame.substr(0, 20)).ok());
  auto reader = TraceReader::open(dir.path());
  EXPECT_TRUE(reader->next().status().is_corruption());
  FILE* f = std::fopen(path.c_str(), "ab");
  ASSERT_NE(f, nullptr);
  std::fwrite(frame.data() + 20, 1, frame.size() - 20, f);
  std::fclose(f);
  auto r = reader->next();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->has_value());
}

TEST(TraceReader, FilePathIsUnderFiles) {
  TempDir dir;
  write_trace(dir.path());
  auto reader = TraceReader::open(dir.path());
  EXPECT_EQ(reader->file_path("abc"), dir.path() + "/files/abc");
}

TEST(TraceWriter, RejectsAHeaderTooLargeToReadBack) {
  TempDir dir;
  TraceHeader h = sample_header();
  h.env.assign(20, std::string(1 << 20, 'e'));
  EXPECT_EQ(write_header(dir.path(), h).code(), Status::Code::kInvalidArgument);
}

TEST(TraceDir, NamesItsParts) {
  EXPECT_EQ(header_path("/t"), "/t/header");
  EXPECT_EQ(events_path("/t"), "/t/events");
  EXPECT_EQ(files_dir("/t"), "/t/files");
  EXPECT_EQ(checkpoint_dir("/t"), "/t/checkpoint");
}

}  // namespace
}  // namespace relive::trace
