// TraceReader: reads a trace directory back — its header, then its events in order. Used by
// the replayer and by `relive dump`; every byte it reads is checked (magic, versions,
// checksums, sequence numbers) and anything wrong is a Status, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "relive/result.h"
#include "wire/segment.h"
#include "wire/trace_types.h"

namespace relive::trace {

class TraceReader {
 public:
  // How much of the event log one read(2) asks for.
  static constexpr size_t kChunkBytes = 1u << 20;

  // Reads and decodes dir/header and opens dir/events. NotFound (naming the path) when either
  // is missing; Corruption or VersionMismatch from the header's decoding.
  static Result<TraceReader> open(const std::string& dir);

  const TraceHeader& header() const { return header_; }

  // The next event; nullopt at a clean end of the log (the end of a whole segment). A log that
  // ends inside a segment is Corruption("truncated segment ..."); a reader following a log that
  // is still being written may call next() again once more has been appended. Any other error
  // is final: later calls return it again.
  Result<std::optional<Event>> next();

  // True when the bytes read so far end inside a segment: a follower of a growing log waits
  // for the rest instead of treating next()'s Corruption as final.
  bool at_partial_segment() const { return error_.ok() && decoder_.has_partial(); }

  // Path of the saved copy `name` (SyscallEvent::file, TraceHeader::exe_copy...). Use
  // FileStore::verify to check it before trusting it.
  std::string file_path(const std::string& name) const;

  // Events returned so far; also the index of the next event.
  uint64_t events_read() const { return events_read_; }
  const std::string& dir() const { return dir_; }

 private:
  TraceReader(std::string dir, TraceHeader header, ScopedFd events)
      : dir_(std::move(dir)), header_(std::move(header)), events_fd_(std::move(events)) {}
  // Fills pending_ with the next segment's events; false at the end of the bytes so far.
  Result<bool> next_segment();
  // Feeds the next chunk of the log to the decoder; returns the bytes read (0 at its end).
  Result<size_t> read_chunk();
  Status fail(Status s);

  std::string dir_;
  TraceHeader header_;
  ScopedFd events_fd_;
  wire::SegmentDecoder decoder_;
  std::vector<std::string> pending_;  // the current segment's encoded events
  size_t next_pending_ = 0;
  uint64_t events_read_ = 0;
  std::string chunk_;  // read(2) buffer, kChunkBytes once used
  Status error_;
};

}  // namespace relive::trace
