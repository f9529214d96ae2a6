#include "wire/protocol_codec.h"

#include <fmt/format.h>

#include "common/hash.h"
#include "schemas/protocol.capnp.h"
#include "wire/flat_message.h"
#include "wire/le_bytes.h"

namespace relive::wire {
namespace {

namespace p = relive::protocol;

// Offsets of the fixed header fields (schemas/protocol.capnp).
constexpr size_t kVersionAt = 4;
constexpr size_t kKindAt = 6;
constexpr size_t kLengthAt = 8;
constexpr size_t kChecksumAt = 12;

// The checksum covers the header's first 12 bytes too, so a flipped kind or length is caught
// even when it still looks plausible.
uint32_t frame_checksum(std::string_view header12, std::string_view payload) {
  std::string covered;
  covered.reserve(header12.size() + payload.size());
  covered.append(header12).append(payload);
  return hash32(covered);
}

uint64_t nonce_half(const p::Nonce& n, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | n.bytes[at + i];
  return v;
}

void set_nonce_half(p::Nonce* n, size_t at, uint64_t v) {
  for (size_t i = 0; i < 8; ++i) n->bytes[at + 7 - i] = static_cast<uint8_t>(v >> (8 * i));
}

void build_nonce(const p::Nonce& n, wire::Nonce::Builder b) {
  b.setHi(nonce_half(n, 0));
  b.setLo(nonce_half(n, 8));
}

p::Nonce read_nonce(wire::Nonce::Reader r) {
  p::Nonce n;
  set_nonce_half(&n, 0, r.getHi());
  set_nonce_half(&n, 8, r.getLo());
  return n;
}

// Fills the union member that matches the variant's alternative.
struct BodyBuilder {
  Envelope::Body::Builder b;
  void operator()(const p::Hello& h) {
    auto hb = b.initHello();
    hb.setNodeName(as_text(h.node_name));
    build_nonce(h.nonce, hb.initNonce());
    hb.setTimestampNs(h.timestamp_ns);
  }
  void operator()(const p::Request& r) {
    auto rb = b.initRequest();
    rb.setCommand(as_text(r.command));
    build_nonce(r.nonce, rb.initNonce());
    rb.setTimestampNs(r.timestamp_ns);
    rb.setBody(as_data(r.body));
  }
  void operator()(const p::Ack& a) {
    auto ab = b.initAck();
    ab.setRequestSeq(a.request_seq);
    ab.setDetail(as_text(a.detail));
    ab.setReply(as_data(a.reply));
  }
  void operator()(const p::Error& e) {
    auto eb = b.initError();
    eb.setRequestSeq(e.request_seq);
    eb.setCode(e.code);
    eb.setMessage(as_text(e.message));
  }
};

Result<Message> decode_envelope(Envelope::Reader r, MessageKind header_kind) {
  if (r.getProtocolVersion() != kProtocolVersion) {
    return Status::VersionMismatch(fmt::format("envelope protocol version {}, expected {}",
                                               r.getProtocolVersion(), kProtocolVersion));
  }
  Message m;
  m.sequence = r.getSequence();
  auto body = r.getBody();
  switch (body.which()) {
    case Envelope::Body::HELLO: {
      auto h = body.getHello();
      m.body = p::Hello{to_string(h.getNodeName()), read_nonce(h.getNonce()), h.getTimestampNs()};
      break;
    }
    case Envelope::Body::REQUEST: {
      auto q = body.getRequest();
      m.body = p::Request{to_string(q.getCommand()), read_nonce(q.getNonce()), q.getTimestampNs(),
                          to_string(q.getBody())};
      break;
    }
    case Envelope::Body::ACK:
      m.body = p::Ack{body.getAck().getRequestSeq(), to_string(body.getAck().getDetail()),
                      to_string(body.getAck().getReply())};
      break;
    case Envelope::Body::ERROR: {
      auto e = body.getError();
      m.body = p::Error{e.getRequestSeq(), e.getCode(), to_string(e.getMessage())};
      break;
    }
    default:
      return Status::Corruption(
          fmt::format("unknown envelope body {}", static_cast<int>(body.which())));
  }
  if (m.kind() != header_kind) {
    return Status::Corruption(fmt::format("frame kind {} but envelope holds {}",
                                          kind_name(header_kind), kind_name(m.kind())));
  }
  return m;
}

}  // namespace

}  // namespace relive::wire

namespace relive::protocol {

const char* kind_name(MessageKind kind) {
  switch (kind) {
    case MessageKind::kHello:
      return "hello";
    case MessageKind::kRequest:
      return "request";
    case MessageKind::kAck:
      return "ack";
    case MessageKind::kError:
      return "error";
  }
  return "unknown";
}

std::string nonce_hex(const Nonce& n) {
  std::string out;
  for (uint8_t b : n.bytes) out += fmt::format("{:02x}", b);
  return out;
}

}  // namespace relive::protocol

namespace relive::wire {

std::string encode_message(const Message& m) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<Envelope>();
  root.setProtocolVersion(kProtocolVersion);
  root.setSequence(m.sequence);
  std::visit(BodyBuilder{root.initBody()}, m.body);
  std::string payload = to_flat_bytes(message);
  std::string out;
  put_u32(&out, kProtocolMagic);
  put_u16(&out, kProtocolVersion);
  put_u16(&out, static_cast<uint16_t>(m.kind()));
  put_u32(&out, static_cast<uint32_t>(payload.size()));
  put_u32(&out, frame_checksum(out, payload));
  return out + payload;
}

Result<ProtocolFrameHeader> parse_frame_header(std::string_view b) {
  if (b.size() < kProtocolHeaderBytes) {
    return Status::Corruption(fmt::format("frame header truncated at {} bytes", b.size()));
  }
  if (get_u32(b, 0) != kProtocolMagic) {
    return Status::Corruption(fmt::format("bad frame magic {:#010x}", get_u32(b, 0)));
  }
  ProtocolFrameHeader h;
  h.version = get_u16(b, kVersionAt);
  if (h.version != kProtocolVersion) {
    return Status::VersionMismatch(fmt::format(
        "peer speaks protocol version {}, this relive speaks {}", h.version, kProtocolVersion));
  }
  uint16_t kind = get_u16(b, kKindAt);
  if (kind < 1 || kind > static_cast<uint16_t>(MessageKind::kError)) {
    return Status::Corruption(fmt::format("unknown message kind {}", kind));
  }
  h.kind = static_cast<MessageKind>(kind);
  h.payload_length = get_u32(b, kLengthAt);
  if (h.payload_length > kMaxControlPayloadBytes || h.payload_length < 8 ||
      h.payload_length % 8 != 0) {
    return Status::Corruption(fmt::format("frame payload length {} is absurd", h.payload_length));
  }
  h.checksum = get_u32(b, kChecksumAt);
  return h;
}

Result<Message> decode_message(std::string_view frame) {
  RELIVE_ASSIGN_OR_RETURN(ProtocolFrameHeader h, parse_frame_header(frame));
  std::string_view payload = frame.substr(kProtocolHeaderBytes);
  if (payload.size() != h.payload_length) {
    return Status::Corruption(fmt::format("frame claims {} payload bytes but holds {}",
                                          h.payload_length, payload.size()));
  }
  if (frame_checksum(frame.substr(0, kChecksumAt), payload) != h.checksum) {
    return Status::Corruption("frame checksum mismatch");
  }
  return decode_flat<Envelope>(payload,
                               [&h](Envelope::Reader r) { return decode_envelope(r, h.kind); });
}

void ProtocolReader::feed(std::string_view bytes) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.append(bytes);
}

Result<std::optional<Message>> ProtocolReader::next() {
  if (!error_.ok()) return error_;
  std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
  if (rest.size() < kProtocolHeaderBytes) return std::optional<Message>();
  Result<ProtocolFrameHeader> h = parse_frame_header(rest);
  if (!h.ok()) return error_ = h.status();
  size_t frame_size = kProtocolHeaderBytes + h->payload_length;
  if (rest.size() < frame_size) return std::optional<Message>();
  Result<Message> m = decode_message(rest.substr(0, frame_size));
  if (!m.ok()) return error_ = m.status();
  pos_ += frame_size;
  if (pos_ > buf_.size() / 2) {
    buf_.erase(0, pos_);  // amortized: each byte moves at most once per halving
    pos_ = 0;
  }
  return std::optional<Message>(std::move(m).value());
}

}  // namespace relive::wire
