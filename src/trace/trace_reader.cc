#include "trace/trace_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/file_util.h"
#include "trace/trace_dir.h"
#include "wire/event_codec.h"
#include "wire/header_codec.h"

namespace relive::trace {
namespace {

// Refuses to load a "header" far larger than any header before reading it into memory.
Result<TraceHeader> read_header(const std::string& dir) {
  std::string path = header_path(dir);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound(path + ": no such file");
    return PosixError("stat " + path, errno);
  }
  if (static_cast<uint64_t>(st.st_size) > wire::kHeaderPrefixBytes + wire::kMaxHeaderPayloadBytes) {
    return Status::Corruption(fmt::format("{}: header file of {} bytes is absurd", path,
                                          static_cast<uint64_t>(st.st_size)));
  }
  RELIVE_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  Result<TraceHeader> h = wire::decode_header(bytes);
  if (!h.ok()) return h.status().with_context(path);
  return h;
}

}  // namespace

Result<TraceReader> TraceReader::open(const std::string& dir) {
  RELIVE_ASSIGN_OR_RETURN(TraceHeader header, read_header(dir));
  std::string path = events_path(dir);
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::NotFound(path + ": no such file");
    return PosixError("open " + path, errno);
  }
  return TraceReader(dir, std::move(header), std::move(fd));
}

std::string TraceReader::file_path(const std::string& name) const {
  return files_dir(dir_) + "/" + name;
}

Status TraceReader::fail(Status s) {
  error_ = std::move(s);
  return error_;
}

Result<size_t> TraceReader::read_chunk() {
  if (chunk_.empty()) chunk_.resize(kChunkBytes);
  for (;;) {
    ssize_t n = ::read(events_fd_.get(), chunk_.data(), chunk_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("read " + events_path(dir_), errno);
    decoder_.feed(std::string_view(chunk_.data(), static_cast<size_t>(n)));
    return static_cast<size_t>(n);
  }
}

Result<bool> TraceReader::next_segment() {
  for (;;) {
    auto segment = decoder_.next();
    if (!segment.ok()) return fail(segment.status().with_context(events_path(dir_)));
    if (segment->has_value()) {
      pending_ = std::move(**segment);
      next_pending_ = 0;
      return true;
    }
    Result<size_t> n = read_chunk();
    if (!n.ok()) return fail(n.status());
    if (*n == 0) return false;
  }
}

Result<std::optional<Event>> TraceReader::next() {
  if (!error_.ok()) return error_;
  while (next_pending_ == pending_.size()) {
    RELIVE_ASSIGN_OR_RETURN(bool more, next_segment());
    if (more) continue;
    if (decoder_.has_partial()) {
      return Status::Corruption(fmt::format("{}: truncated segment {} at offset {}",
                                            events_path(dir_), decoder_.next_sequence(),
                                            decoder_.stream_offset()));
    }
    return std::optional<Event>();
  }
  Result<Event> event = wire::decode_event(pending_[next_pending_]);
  if (!event.ok()) {
    return fail(
        event.status().with_context(fmt::format("{}: event #{}", events_path(dir_), events_read_)));
  }
  ++next_pending_;
  ++events_read_;
  return std::optional<Event>(std::move(event).value());
}

}  // namespace relive::trace
