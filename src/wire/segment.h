// The event log's framing: a file (or network stream) of self-checking LZ4 frames called
// segments, each holding a batch of encoded events. Append-only, so a reader can follow a log
// while it grows and a sender can ship it in rounds. Layout: schemas/trace.capnp, header comment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relive/result.h"

namespace relive::wire {

inline constexpr uint32_t kSegmentMagic = 0x47534c52;  // the bytes "RLSG", little-endian
inline constexpr size_t kSegmentHeaderBytes = 36;
inline constexpr uint32_t kMaxSegmentRawBytes = 64u << 20;
// LZ4's bound on the compressed size of kMaxSegmentRawBytes.
inline constexpr uint32_t kMaxSegmentCompressedBytes =
    kMaxSegmentRawBytes + kMaxSegmentRawBytes / 255 + 16;
inline constexpr size_t kEventLengthBytes = 4;
// The smallest and largest encoded events a segment can carry. No Cap'n Proto message is shorter
// than one word; the minimum also bounds how many events (and allocations) a frame can claim.
inline constexpr size_t kMinEventBytes = 8;
inline constexpr size_t kMaxEventBytes = kMaxSegmentRawBytes - kEventLengthBytes;
// Raw payload bytes per event at least.
inline constexpr size_t kMinEventFrameBytes = kEventLengthBytes + kMinEventBytes;

// Appends one encoded event, length-prefixed, to a raw segment payload being built. Its size
// must be within [kMinEventBytes, kMaxEventBytes] (a bug otherwise).
void append_event_to_payload(std::string* raw, std::string_view encoded_event);

// One frame: header plus LZ4 block of `raw`, which holds `count` length-prefixed events (see
// append_event_to_payload). raw.size() <= kMaxSegmentRawBytes is the caller's contract.
// `acceleration` is LZ4's (1: its default; higher: faster, larger); any value decodes alike.
std::string encode_segment_payload(uint64_t seq, uint32_t count, std::string_view raw,
                                   int acceleration = 1);

// One frame holding `encoded_events`; each within [kMinEventBytes, kMaxEventBytes] and their
// total size plus 4 bytes each at most kMaxSegmentRawBytes (a bug otherwise).
std::string encode_segment(uint64_t seq, const std::vector<std::string>& encoded_events);

// The length of the longest prefix of `bytes` (the start of a segment stream, or of a frame
// within one) made of whole frames, judged by their headers' lengths alone: what a sender can
// ship of a log that is still being written. The frames themselves are checked by the reader.
size_t whole_segments_prefix(std::string_view bytes);

// Incremental reader of a segment stream. Feed it bytes as they arrive, in pieces of any size,
// and call next() until it returns nullopt. A frame's header is validated as soon as its 36
// bytes are buffered, before the decoder waits for (or allocates) its payload. Errors are
// sticky: after the first one, next() keeps returning it.
class SegmentDecoder {
 public:
  // `first_seq` is the sequence number the first frame must carry (0 for a whole log).
  explicit SegmentDecoder(uint64_t first_seq = 0) : expected_seq_(first_seq) {}

  void feed(std::string_view bytes);

  // The events of the next segment when a whole frame is buffered; nullopt when more bytes
  // are needed. Corruption on a bad magic, checksum, flags or size, a sequence gap or a failed
  // decompression; VersionMismatch on a frame from a newer format version.
  Result<std::optional<std::vector<std::string>>> next();

  // True when bytes are buffered that do not make a whole frame yet. At the end of a log this
  // means the last frame is truncated.
  bool has_partial() const;

  // How many more bytes the next frame needs before next() can return it: the rest of its
  // header, then the rest of its payload as the header announces it (the header is validated
  // by next(), so a hostile length is bounded there, not here: callers read at most
  // kSegmentHeaderBytes + kMaxSegmentCompressedBytes per frame). 0 when a whole frame is buffered.
  size_t bytes_wanted() const;

  // The sequence number the next frame must carry.
  uint64_t next_sequence() const { return expected_seq_; }
  // Offset in the stream of the first byte not yet consumed (the next frame's start).
  uint64_t stream_offset() const { return offset_; }

 private:
  struct FrameHeader {
    uint64_t seq = 0;
    uint32_t count = 0;
    uint32_t raw_length = 0;
    uint32_t compressed_length = 0;
    uint32_t payload_hash = 0;
  };

  size_t buffered() const { return buf_.size() - pos_; }
  Result<FrameHeader> parse_header(std::string_view header) const;
  Result<std::vector<std::string>> decode_payload(const FrameHeader& h,
                                                  std::string_view compressed) const;
  void consume(size_t n);
  Status fail(Status s);

  std::string buf_;
  size_t pos_ = 0;  // buf_[pos_..] is not consumed yet
  uint64_t expected_seq_;
  uint64_t offset_ = 0;
  Status error_;
};

}  // namespace relive::wire
