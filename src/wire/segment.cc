#include "wire/segment.h"

#include <fmt/format.h>
#include <lz4.h>

#include "common/check.h"
#include "common/hash.h"
#include "wire/le_bytes.h"
#include "wire/trace_types.h"

namespace relive::wire {
namespace {

// Offsets of the fixed header fields (schemas/trace.capnp).
constexpr size_t kVersionAt = 4;
constexpr size_t kFlagsAt = 6;
constexpr size_t kSeqAt = 8;
constexpr size_t kCountAt = 16;
constexpr size_t kRawLengthAt = 20;
constexpr size_t kCompressedLengthAt = 24;
constexpr size_t kPayloadHashAt = 28;
constexpr size_t kHeaderHashAt = 32;

constexpr uint16_t kSegmentVersion = static_cast<uint16_t>(trace::kFormatVersion);

uint32_t max_compressed_length(uint32_t raw_length) {
  return static_cast<uint32_t>(LZ4_compressBound(static_cast<int>(raw_length)));
}

// An LZ4 block expands at most 255-fold (one length byte adds at most 255 bytes of match), so a
// frame claiming more raw bytes than that is rejected before its raw buffer is allocated: a
// small hostile frame cannot make the reader allocate 64 MiB.
constexpr uint64_t kMaxExpansion = 255;
constexpr uint64_t kExpansionSlack = 64;

}  // namespace

void append_event_to_payload(std::string* raw, std::string_view encoded_event) {
  RELIVE_CHECK(encoded_event.size() >= kMinEventBytes && encoded_event.size() <= kMaxEventBytes,
               "event of {} bytes", encoded_event.size());
  put_u32(raw, static_cast<uint32_t>(encoded_event.size()));
  raw->append(encoded_event);
}

std::string encode_segment_payload(uint64_t seq, uint32_t count, std::string_view raw,
                                   int acceleration) {
  RELIVE_CHECK(raw.size() <= kMaxSegmentRawBytes, "segment payload of {} bytes", raw.size());
  RELIVE_CHECK(count <= raw.size() / kMinEventFrameBytes, "{} events in {} bytes", count,
               raw.size());
  std::string compressed(max_compressed_length(static_cast<uint32_t>(raw.size())), '\0');
  int n = LZ4_compress_fast(raw.data(), compressed.data(), static_cast<int>(raw.size()),
                            static_cast<int>(compressed.size()), acceleration);
  RELIVE_CHECK(n > 0, "LZ4_compress_fast failed on {} bytes", raw.size());
  compressed.resize(static_cast<size_t>(n));

  std::string out;
  out.reserve(kSegmentHeaderBytes + compressed.size());
  put_u32(&out, kSegmentMagic);
  put_u16(&out, kSegmentVersion);
  put_u16(&out, 0);  // flags
  put_u64(&out, seq);
  put_u32(&out, count);
  put_u32(&out, static_cast<uint32_t>(raw.size()));
  put_u32(&out, static_cast<uint32_t>(compressed.size()));
  put_u32(&out, hash32(compressed));
  put_u32(&out, hash32(out));
  out += compressed;
  return out;
}

std::string encode_segment(uint64_t seq, const std::vector<std::string>& encoded_events) {
  std::string raw;
  for (const std::string& e : encoded_events) append_event_to_payload(&raw, e);
  return encode_segment_payload(seq, static_cast<uint32_t>(encoded_events.size()), raw);
}

size_t whole_segments_prefix(std::string_view bytes) {
  size_t at = 0;
  while (bytes.size() - at >= kSegmentHeaderBytes) {
    uint64_t frame = kSegmentHeaderBytes + uint64_t{get_u32(bytes.substr(at), kCompressedLengthAt)};
    if (frame > bytes.size() - at) break;
    at += static_cast<size_t>(frame);
  }
  return at;
}

void SegmentDecoder::feed(std::string_view bytes) { buf_.append(bytes); }

bool SegmentDecoder::has_partial() const {
  size_t n = buffered();
  if (n == 0) return false;
  if (n < kSegmentHeaderBytes) return true;
  std::string_view rest(buf_.data() + pos_, n);
  return n - kSegmentHeaderBytes < get_u32(rest, kCompressedLengthAt);
}

size_t SegmentDecoder::bytes_wanted() const {
  size_t n = buffered();
  if (n < kSegmentHeaderBytes) return kSegmentHeaderBytes - n;
  std::string_view rest(buf_.data() + pos_, n);
  uint64_t frame = kSegmentHeaderBytes + uint64_t{get_u32(rest, kCompressedLengthAt)};
  return frame > n ? static_cast<size_t>(frame - n) : 0;
}

Status SegmentDecoder::fail(Status s) {
  error_ = s.with_context(fmt::format("segment {} at offset {}", expected_seq_, offset_));
  return error_;
}

void SegmentDecoder::consume(size_t n) {
  pos_ += n;
  offset_ += n;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > buf_.size() / 2) {
    // Amortized: each byte is moved at most once per halving.
    buf_.erase(0, pos_);
    pos_ = 0;
  }
}

// Everything that can be checked from the 36 header bytes alone, so that absurd sizes are
// rejected before anything is allocated for them. The magic and the version come first: a
// frame from a newer relive is reported as such even if the rest of its header changed.
Result<SegmentDecoder::FrameHeader> SegmentDecoder::parse_header(std::string_view b) const {
  if (get_u32(b, 0) != kSegmentMagic) return Status::Corruption("bad segment magic");
  uint16_t version = get_u16(b, kVersionAt);
  if (version > kSegmentVersion) {
    return Status::VersionMismatch(
        fmt::format("segment format version {} is newer than this relive's version {}", version,
                    kSegmentVersion));
  }
  if (hash32(b.substr(0, kHeaderHashAt)) != get_u32(b, kHeaderHashAt)) {
    return Status::Corruption("segment header checksum mismatch");
  }
  if (version == 0) return Status::Corruption("segment format version 0");
  if (uint16_t flags = get_u16(b, kFlagsAt); flags != 0) {
    return Status::Corruption(fmt::format("unknown segment flags {:#x}", flags));
  }
  FrameHeader h{get_u64(b, kSeqAt), get_u32(b, kCountAt), get_u32(b, kRawLengthAt),
                get_u32(b, kCompressedLengthAt), get_u32(b, kPayloadHashAt)};
  if (h.raw_length > kMaxSegmentRawBytes) {
    return Status::Corruption(fmt::format("segment raw length {} is absurd", h.raw_length));
  }
  if (h.count > h.raw_length / kMinEventFrameBytes) {
    return Status::Corruption(
        fmt::format("{} events cannot fit in {} bytes", h.count, h.raw_length));
  }
  if (h.compressed_length > max_compressed_length(h.raw_length)) {
    return Status::Corruption(fmt::format("compressed length {} is absurd for {} raw bytes",
                                          h.compressed_length, h.raw_length));
  }
  if (h.raw_length > kMaxExpansion * h.compressed_length + kExpansionSlack) {
    return Status::Corruption(fmt::format("raw length {} is absurd for {} compressed bytes",
                                          h.raw_length, h.compressed_length));
  }
  if (h.seq != expected_seq_) {
    return Status::Corruption(fmt::format("sequence number {}, expected {}", h.seq, expected_seq_));
  }
  return h;
}

Result<std::vector<std::string>> SegmentDecoder::decode_payload(const FrameHeader& h,
                                                                std::string_view compressed) const {
  if (hash32(compressed) != h.payload_hash) {
    return Status::Corruption("segment payload checksum mismatch");
  }
  std::string raw(h.raw_length, '\0');
  int n = LZ4_decompress_safe(compressed.data(), raw.data(), static_cast<int>(compressed.size()),
                              static_cast<int>(raw.size()));
  if (n < 0) return Status::Corruption("LZ4 decompression failed");
  if (static_cast<uint32_t>(n) != h.raw_length) {
    return Status::Corruption(
        fmt::format("decompressed {} bytes, header says {}", n, h.raw_length));
  }
  std::vector<std::string> events;
  events.reserve(h.count);  // bounded: count <= raw_length / kMinEventFrameBytes
  std::string_view rest(raw);
  for (uint32_t i = 0; i < h.count; ++i) {
    if (rest.size() < kEventLengthBytes) return Status::Corruption("event length truncated");
    uint32_t len = get_u32(rest, 0);
    rest.remove_prefix(kEventLengthBytes);
    if (len > rest.size()) {
      return Status::Corruption(fmt::format("event {} of {} bytes overruns the segment", i, len));
    }
    if (len < kMinEventBytes) {
      return Status::Corruption(fmt::format("event {} of {} bytes is too short", i, len));
    }
    events.emplace_back(rest.substr(0, len));
    rest.remove_prefix(len);
  }
  if (!rest.empty()) {
    return Status::Corruption(fmt::format("{} stray bytes after {} events", rest.size(), h.count));
  }
  return events;
}

Result<std::optional<std::vector<std::string>>> SegmentDecoder::next() {
  if (!error_.ok()) return error_;
  if (buffered() < kSegmentHeaderBytes) return std::optional<std::vector<std::string>>();
  std::string_view frame(buf_.data() + pos_, buffered());
  Result<FrameHeader> header = parse_header(frame.substr(0, kSegmentHeaderBytes));
  if (!header.ok()) return fail(header.status());
  size_t frame_size = kSegmentHeaderBytes + header->compressed_length;
  if (frame.size() < frame_size) return std::optional<std::vector<std::string>>();
  Result<std::vector<std::string>> events =
      decode_payload(*header, frame.substr(kSegmentHeaderBytes, header->compressed_length));
  if (!events.ok()) return fail(events.status());
  consume(frame_size);
  ++expected_seq_;
  return std::optional<std::vector<std::string>>(std::move(events).value());
}

}  // namespace relive::wire
