#include "trace/event_log_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>

#include "common/file_util.h"
#include "wire/segment.h"

namespace relive::trace {

Result<EventLogWriter> EventLogWriter::create(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return PosixError("create " + path, errno);
  return EventLogWriter(std::move(fd), path);
}

EventLogWriter& EventLogWriter::operator=(EventLogWriter&& other) noexcept {
  if (this == &other) return *this;
  flush_quietly();
  fd_ = std::move(other.fd_);
  path_ = std::move(other.path_);
  raw_ = std::move(other.raw_);
  buffered_events_ = std::exchange(other.buffered_events_, 0);
  bytes_written_ = other.bytes_written_;
  events_written_ = other.events_written_;
  segments_written_ = other.segments_written_;
  error_ = std::move(other.error_);
  return *this;
}

EventLogWriter::~EventLogWriter() { flush_quietly(); }

void EventLogWriter::flush_quietly() {
  // A moved-from writer has no fd and nothing to write.
  if (fd_.valid()) (void)flush();
}

Status EventLogWriter::append(std::string_view encoded_event) {
  if (!error_.ok()) return error_;
  if (encoded_event.size() < wire::kMinEventBytes || encoded_event.size() > wire::kMaxEventBytes) {
    return Status::InvalidArgument(fmt::format("event of {} bytes is outside [{}, {}]",
                                               encoded_event.size(), wire::kMinEventBytes,
                                               wire::kMaxEventBytes));
  }
  if (raw_.size() + wire::kEventLengthBytes + encoded_event.size() > wire::kMaxSegmentRawBytes) {
    RELIVE_RETURN_IF_ERROR(flush());
  }
  wire::append_event_to_payload(&raw_, encoded_event);
  ++buffered_events_;
  if (raw_.size() >= kFlushThreshold) return flush();
  return Status::Ok();
}

Status EventLogWriter::flush() {
  if (!error_.ok()) return error_;
  if (buffered_events_ == 0) return Status::Ok();
  std::string frame =
      wire::encode_segment_payload(segments_written_, buffered_events_, raw_, acceleration_);
  Status s = write_all(fd_.get(), frame);
  if (!s.ok()) {
    // Leave only whole segments behind, so that readers of the log see a clean end.
    (void)::ftruncate(fd_.get(), static_cast<off_t>(bytes_written_));
    error_ = s.with_context(path_);
    return error_;
  }
  bytes_written_ += frame.size();
  events_written_ += buffered_events_;
  ++segments_written_;
  buffered_events_ = 0;
  raw_.clear();
  // Keep the buffer for the next segment unless one huge event inflated it.
  if (raw_.capacity() > 4 * kFlushThreshold) raw_.shrink_to_fit();
  return Status::Ok();
}

Status EventLogWriter::sync() {
  RELIVE_RETURN_IF_ERROR(flush());
  if (::fdatasync(fd_.get()) != 0) return PosixError("fdatasync " + path_, errno);
  return Status::Ok();
}

}  // namespace relive::trace
