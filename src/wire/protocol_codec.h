// Converts control-protocol messages (wire::Message) to and from frames (schemas/protocol.capnp,
// header comment). Frames arrive from the network, possibly from a hostile or broken peer, so
// every reader bounds sizes before allocating and reports bad bytes as Status, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "relive/result.h"
#include "wire/protocol_types.h"

namespace relive::wire {

using protocol::kProtocolVersion;
using protocol::Message;
using protocol::MessageKind;

inline constexpr uint32_t kProtocolMagic = 0x4d504c52;  // the bytes "RLPM", little-endian
inline constexpr size_t kProtocolHeaderBytes = 16;
// Control messages are small; bulk data travels in LZ4 segments, not here.
inline constexpr uint32_t kMaxControlPayloadBytes = 16u << 20;

struct ProtocolFrameHeader {
  uint16_t version = 0;
  MessageKind kind = MessageKind::kHello;
  uint32_t payload_length = 0;
  uint32_t checksum = 0;
};

// The whole frame for `m`, written with kProtocolVersion.
std::string encode_message(const Message& m);

// Validates the 16 header bytes alone (magic, version, kind, length bounds) so that a receiver
// knows how many payload bytes to read before allocating them. Corruption on a bad magic, an
// unknown kind or an absurd length; VersionMismatch on a version other than kProtocolVersion.
Result<ProtocolFrameHeader> parse_frame_header(std::string_view header);

// Decodes exactly one whole frame: header checks as above, then the checksum, the Cap'n Proto
// payload, and agreement of the envelope's version and union member with the header.
Result<Message> decode_message(std::string_view frame);

// Incremental reader of a frame stream: feed bytes in pieces of any size and call next() until
// it returns nullopt. Errors are sticky.
class ProtocolReader {
 public:
  void feed(std::string_view bytes);
  // The next message when a whole frame is buffered; nullopt when more bytes are needed.
  Result<std::optional<Message>> next();
  // True when bytes are buffered that do not make a whole frame yet.
  bool has_partial() const { return pos_ < buf_.size(); }

 private:
  std::string buf_;
  size_t pos_ = 0;  // buf_[pos_..] is not consumed yet
  Status error_;
};

}  // namespace relive::wire
