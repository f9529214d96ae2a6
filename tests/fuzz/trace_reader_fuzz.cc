// libFuzzer target for every parser of untrusted trace bytes: the header file, single event
// messages and the segment stream. Inputs may come from a damaged disk or, during migration,
// from the network, so no input may crash, hang, leak or read out of bounds.
//
// The first input byte selects a mode. Modes 3-5 repair checksums and lengths before decoding,
// so that mutations reach the decompressor, the payload splitter and the Cap'n Proto decoder
// instead of dying at the first checksum.
//   0 decode_header(rest)           3 segment stream, every frame's checksums repaired
//   1 decode_event(rest)            4 rest = u32 event count + raw payload, framed validly
//   2 segment stream, fed in        5 decode_header(rest) with magic, version, length and
//     chunks of rest[0] bytes         checksum repaired
// Whatever decodes must survive a round trip through its encoder unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/hash.h"
#include "wire/event_codec.h"
#include "wire/header_codec.h"
#include "wire/le_bytes.h"
#include "wire/segment.h"

namespace relive::wire {
namespace {

void set_u32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}

void check_event(std::string_view bytes) {
  Result<trace::Event> e = decode_event(bytes);
  if (!e.ok()) return;
  Result<trace::Event> again = decode_event(encode_event(*e));
  if (!again.ok() || !(*again == *e)) std::abort();
}

void check_header(std::string_view bytes) {
  Result<trace::TraceHeader> h = decode_header(bytes);
  if (!h.ok()) return;
  // The encoder always writes the current version (an older file's header comes back newer);
  // everything else must survive unchanged.
  Result<trace::TraceHeader> again = decode_header(encode_header(*h));
  if (!again.ok() || again->version != trace::kFormatVersion) std::abort();
  again->version = h->version;
  if (!(*again == *h)) std::abort();
}

void check_stream(std::string_view bytes, size_t chunk) {
  SegmentDecoder decoder;
  size_t at = 0;
  do {
    decoder.feed(bytes.substr(at, chunk));
    at += chunk;
    for (;;) {
      auto segment = decoder.next();
      if (!segment.ok()) return;
      if (!segment->has_value()) break;
      for (const std::string& e : **segment) check_event(e);
    }
  } while (at < bytes.size());
  (void)decoder.has_partial();
}

std::string repair_frames(std::string_view in) {
  std::string s(in);
  for (size_t at = 0; at + kSegmentHeaderBytes <= s.size();) {
    uint32_t compressed = get_u32(s, at + 24);
    size_t end = std::min(s.size(), at + kSegmentHeaderBytes + compressed);
    set_u32(&s, at + 28,
            hash32(std::string_view(s).substr(at + kSegmentHeaderBytes,
                                              end - at - kSegmentHeaderBytes)));
    set_u32(&s, at + 32, hash32(std::string_view(s).substr(at, 32)));
    at = end;
  }
  return s;
}

std::string frame_payload(std::string_view in) {
  if (in.size() < 4 || in.size() - 4 > kMaxSegmentRawBytes) return std::string(in);
  std::string_view raw = in.substr(4);
  uint32_t count =
      std::min<uint32_t>(get_u32(in, 0), static_cast<uint32_t>(raw.size() / kMinEventFrameBytes));
  return encode_segment_payload(0, count, raw);
}

std::string repair_header(std::string_view in) {
  std::string s(in);
  if (s.size() < kHeaderPrefixBytes) return s;
  s.replace(0, kHeaderMagic.size(), kHeaderMagic);
  set_u32(&s, 8, trace::kFormatVersion);
  set_u32(&s, 12, static_cast<uint32_t>(s.size() - kHeaderPrefixBytes));
  set_u32(&s, 16, hash32(std::string_view(s).substr(kHeaderPrefixBytes)));
  return s;
}

}  // namespace
}  // namespace relive::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace relive::wire;
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      check_header(rest);
      break;
    case 1:
      check_event(rest);
      break;
    case 2: {
      size_t chunk = rest.empty() ? 1 : 1 + static_cast<uint8_t>(rest[0]);
      check_stream(rest.empty() ? rest : rest.substr(1), chunk);
      break;
    }
    case 3:
      check_stream(repair_frames(rest), rest.size() + 1);
      break;
    case 4:
      check_stream(frame_payload(rest), rest.size() + 1);
      break;
    case 5:
      check_header(repair_header(rest));
      break;
  }
  return 0;
}
