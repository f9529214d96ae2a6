// libFuzzer target for the control-protocol reader: the bytes a relived agent receives from
// the network. A peer may be hostile even after authenticating (a compromised host), so no
// input may crash, hang, leak, read out of bounds or allocate beyond the frame's bound.
//
// The first input byte selects a mode. Mode 2 repairs magic, version, length and checksum
// before decoding, so that mutations reach the Cap'n Proto envelope decoder instead of dying
// at the first checksum.
//   0 decode_message(rest)
//   1 ProtocolReader fed rest in chunks of rest[0] bytes
//   2 decode_message(rest) with its frame header repaired
// Whatever decodes must survive a round trip through encode_message unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/hash.h"
#include "wire/le_bytes.h"
#include "wire/protocol_codec.h"

namespace relive::wire {
namespace {

void check_round_trip(const Message& m) {
  Result<Message> again = decode_message(encode_message(m));
  if (!again.ok() || !(*again == m)) std::abort();
}

void check_frame(std::string_view bytes) {
  Result<Message> m = decode_message(bytes);
  if (m.ok()) check_round_trip(*m);
}

void check_stream(std::string_view bytes, size_t chunk) {
  ProtocolReader reader;
  size_t at = 0;
  do {
    reader.feed(bytes.substr(at, chunk));
    at += chunk;
    for (;;) {
      Result<std::optional<Message>> m = reader.next();
      if (!m.ok()) return;
      if (!m->has_value()) break;
      check_round_trip(**m);
    }
  } while (at < bytes.size());
  (void)reader.has_partial();
}

void set_le(std::string* s, size_t at, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}

// rest[0] picks the kind; the remainder, padded to whole words, becomes the payload.
std::string repair_frame(std::string_view in) {
  if (in.empty()) return std::string();
  std::string payload(in.substr(1));
  payload.resize((payload.size() + 7) / 8 * 8, '\0');
  std::string f(kProtocolHeaderBytes, '\0');
  set_le(&f, 0, kProtocolMagic, 4);
  set_le(&f, 4, kProtocolVersion, 2);
  set_le(&f, 6, 1 + static_cast<uint8_t>(in[0]) % 4, 2);
  set_le(&f, 8, static_cast<uint32_t>(payload.size()), 4);
  set_le(&f, 12, hash32(f.substr(0, 12) + payload), 4);
  return f + payload;
}

}  // namespace
}  // namespace relive::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace relive::wire;
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      check_frame(rest);
      break;
    case 1: {
      size_t chunk = rest.empty() ? 1 : 1 + static_cast<uint8_t>(rest[0]);
      check_stream(rest.empty() ? rest : rest.substr(1), chunk);
      break;
    }
    case 2:
      check_frame(repair_frame(rest));
      break;
  }
  return 0;
}
