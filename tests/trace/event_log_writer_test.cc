#include "trace/event_log_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "common/file_util.h"
#include "trace/test_samples.h"
#include "wire/segment.h"

namespace relive::trace {
namespace {

using testing::TempDir;

uint64_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : ~0ull;
}

// Decodes every segment in `bytes`; fails the test on any error.
std::vector<std::vector<std::string>> segments_of(const std::string& bytes) {
  wire::SegmentDecoder d;
  d.feed(bytes);
  std::vector<std::vector<std::string>> out;
  for (;;) {
    auto r = d.next();
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok() || !r->has_value()) break;
    out.push_back(std::move(**r));
  }
  EXPECT_FALSE(d.has_partial());
  return out;
}

TEST(EventLogWriter, BuffersUntilFlush) {
  TempDir dir;
  auto w = EventLogWriter::create(dir / "events");
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  ASSERT_TRUE(w->append("first event").ok());
  ASSERT_TRUE(w->append("second event").ok());
  EXPECT_EQ(file_size(dir / "events"), 0u);
  EXPECT_EQ(w->events_buffered(), 2u);
  ASSERT_TRUE(w->flush().ok());
  EXPECT_EQ(w->events_written(), 2u);
  EXPECT_EQ(w->segments_written(), 1u);
  EXPECT_EQ(w->bytes_written(), file_size(dir / "events"));
  auto segments = segments_of(*read_file(dir / "events"));
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0], (std::vector<std::string>{"first event", "second event"}));
}

// The log writer compresses faster (and larger) when the tracer gets ahead of it: segments written
// at any acceleration read back alike.
TEST(EventLogWriter, SegmentsReadBackAtEveryCompressionEffort) {
  TempDir dir;
  auto w = EventLogWriter::create(dir / "events");
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  std::string event;
  for (int i = 0; i < 4000; ++i) event += static_cast<char>("relive"[i % 6] + i % 3);
  std::vector<std::vector<std::string>> want;
  for (int acceleration : {1, 4, 16, 64, 65537}) {
    w->set_acceleration(acceleration);
    ASSERT_TRUE(w->append(event).ok());
    ASSERT_TRUE(w->append(std::to_string(acceleration) + " of effort").ok());
    ASSERT_TRUE(w->flush().ok());
    want.push_back({event, std::to_string(acceleration) + " of effort"});
  }
  EXPECT_EQ(segments_of(*read_file(dir / "events")), want);
}

TEST(EventLogWriter, FlushWithNothingBufferedWritesNothing) {
  TempDir dir;
  auto w = EventLogWriter::create(dir / "events");
  ASSERT_TRUE(w->flush().ok());
  ASSERT_TRUE(w->sync().ok());
  EXPECT_EQ(w->segments_written(), 0u);
  EXPECT_EQ(file_size(dir / "events"), 0u);
}

TEST(EventLogWriter, WritesASegmentByItselfPastTheThreshold) {
  TempDir dir;
  auto w = EventLogWriter::create(dir / "events");
  std::string event(1000, 'e');
  size_t n = EventLogWriter::kFlushThreshold / 1000 + 10;
  for (size_t i = 0; i < n; ++i) ASSERT_TRUE(w->append(event).ok());
  EXPECT_EQ(w->segments_written(), 1u);
  EXPECT_GT(file_size(dir / "events"), 0u);
  EXPECT_EQ(w->events_written() + w->events_buffered(), n);
  ASSERT_TRUE(w->sync().ok());
  auto segments = segments_of(*read_file(dir / "events"));
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[0].size() + segments[1].size(), n);
}

TEST(EventLogWriter, SplitsBeforeASegmentWouldOverflow) {
  TempDir dir;
  auto w = EventLogWriter::create(dir / "events");
  std::string big(wire::kMaxEventBytes - 4, 'b');  // fits alone, not with "small event"
  ASSERT_TRUE(w->append("small event").ok());
  ASSERT_TRUE(w->append(big).ok());
  ASSERT_TRUE(w->flush().ok());
  auto segments = segments_of(*read_file(dir / "events"));
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[1][0].size(), big.size());
}

TEST(EventLogWriter, RejectsEventsASegmentCannotCarry) {
  TempDir dir;
  auto w = EventLogWriter::create(dir / "events");
  Status s = w->append(std::string(wire::kMaxEventBytes + 1, 'x'));
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(w->append("short").code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(w->append("still usable").ok());
}

TEST(EventLogWriter, DestructorWritesWhatIsBuffered) {
  TempDir dir;
  {
    auto w = EventLogWriter::create(dir / "events");
    ASSERT_TRUE(w->append("kept event").ok());
  }
  auto segments = segments_of(*read_file(dir / "events"));
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0][0], "kept event");
}

TEST(EventLogWriter, MoveAssignmentFlushesTheOverwrittenWriter) {
  TempDir dir;
  auto a = EventLogWriter::create(dir / "a");
  auto b = EventLogWriter::create(dir / "b");
  ASSERT_TRUE(a->append("event in a").ok());
  ASSERT_TRUE(b->append("event in b").ok());
  *a = std::move(*b);
  EXPECT_EQ(segments_of(*read_file(dir / "a")).size(), 1u);
  ASSERT_TRUE(a->flush().ok());
  EXPECT_EQ(segments_of(*read_file(dir / "b"))[0][0], "event in b");
}

TEST(EventLogWriter, CreateTruncates) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir / "events", "old contents").ok());
  auto w = EventLogWriter::create(dir / "events");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(file_size(dir / "events"), 0u);
}

TEST(EventLogWriter, CreateInMissingDirectoryFails) {
  TempDir dir;
  auto w = EventLogWriter::create(dir / "no/such/dir/events");
  EXPECT_EQ(w.status().code(), Status::Code::kIoError);
}

TEST(EventLogWriter, WriteFailureIsSticky) {
  auto w = EventLogWriter::create("/dev/full");
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  ASSERT_TRUE(w->append("doomed event").ok());
  Status s = w->flush();
  ASSERT_EQ(s.code(), Status::Code::kIoError) << s.to_string();
  EXPECT_EQ(w->append("more events").code(), Status::Code::kIoError);
  EXPECT_EQ(w->sync().code(), Status::Code::kIoError);
  EXPECT_EQ(w->segments_written(), 0u);
}

}  // namespace
}  // namespace relive::trace
