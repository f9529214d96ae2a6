// EventLogWriter: appends encoded events to a trace's event log, batching them into segments
// (src/wire/segment.h). The recorder owns one per trace; a reader may follow the file as it
// grows, since every write(2) adds whole segments only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/scoped_fd.h"
#include "relive/result.h"

namespace relive::trace {

class EventLogWriter {
 public:
  // Raw bytes buffered before append() writes a segment by itself.
  static constexpr size_t kFlushThreshold = 256u << 10;

  // Creates (or truncates) the log at `path`.
  static Result<EventLogWriter> create(const std::string& path);

  EventLogWriter(EventLogWriter&& other) noexcept = default;
  EventLogWriter& operator=(EventLogWriter&& other) noexcept;
  EventLogWriter(const EventLogWriter&) = delete;
  EventLogWriter& operator=(const EventLogWriter&) = delete;
  // Writes what is still buffered, ignoring errors: call flush() or sync() to see them.
  ~EventLogWriter();

  // Buffers one event from wire::encode_event; writes a segment once about kFlushThreshold
  // raw bytes are buffered. InvalidArgument for an event a segment cannot carry (shorter than
  // wire::kMinEventBytes or longer than wire::kMaxEventBytes). After a failed write every call
  // returns that failure, and the file is cut back to its last whole segment where possible.
  Status append(std::string_view encoded_event);
  // Writes the buffered events, if any, as one segment (write(2) only, no fsync).
  Status flush();
  // flush() and then fdatasync(2): the events appended so far survive a crash.
  Status sync();
  // How hard the next segments are compressed: LZ4's acceleration (1, the default, compresses
  // best; higher is faster and larger). Every value reads back alike.
  void set_acceleration(int acceleration) { acceleration_ = acceleration; }
  int acceleration() const { return acceleration_; }

  uint64_t bytes_written() const { return bytes_written_; }
  // Events in segments already written; events_buffered() more are waiting for the next one.
  uint64_t events_written() const { return events_written_; }
  uint64_t events_buffered() const { return buffered_events_; }
  uint64_t segments_written() const { return segments_written_; }

 private:
  EventLogWriter(ScopedFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  void flush_quietly();

  ScopedFd fd_;
  std::string path_;
  std::string raw_;  // the next segment's raw payload
  uint32_t buffered_events_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t events_written_ = 0;
  uint64_t segments_written_ = 0;
  int acceleration_ = 1;
  Status error_;  // sticky: the first write failure
};

}  // namespace relive::trace
