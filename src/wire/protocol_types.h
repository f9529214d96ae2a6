// Plain C++ types of the control protocol (schemas/protocol.capnp). Free of Cap'n Proto so that
// src/security/ and the agents can use them; src/wire/protocol_codec.h converts them to frames.
// Their own namespace keeps them apart from the generated relive::wire::Hello etc.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>

namespace relive::protocol {

inline constexpr uint16_t kProtocolVersion = 1;

// Values of the frame header's kind field; they must agree with the Envelope's union member.
enum class MessageKind : uint16_t { kHello = 1, kRequest = 2, kAck = 3, kError = 4 };

// 128 random bits. Generated with security::random_nonce().
struct Nonce {
  std::array<uint8_t, 16> bytes{};
  bool operator==(const Nonce&) const = default;
};

struct Hello {
  std::string node_name;
  Nonce nonce;
  int64_t timestamp_ns = 0;  // unix time
  bool operator==(const Hello&) const = default;
};

struct Request {
  std::string command;
  Nonce nonce;
  int64_t timestamp_ns = 0;  // unix time
  std::string body;          // opaque to the framing
  bool operator==(const Request&) const = default;
};

struct Ack {
  uint64_t request_seq = 0;
  std::string detail;   // a document (ha.status: JSON)
  std::string reply{};  // a typed reply (wire/migration_codec.h), or empty
  bool operator==(const Ack&) const = default;
};

struct Error {
  uint64_t request_seq = 0;
  uint32_t code = 0;  // relive::Status::Code
  std::string message;
  bool operator==(const Error&) const = default;
};

// The alternatives are in MessageKind order (index + 1).
using MessageBody = std::variant<Hello, Request, Ack, Error>;

// One protocol message.
struct Message {
  uint64_t sequence = 0;
  MessageBody body;
  bool operator==(const Message&) const = default;

  MessageKind kind() const { return static_cast<MessageKind>(body.index() + 1); }
};

const char* kind_name(MessageKind kind);
// 32 lowercase hex digits.
std::string nonce_hex(const Nonce& n);

}  // namespace relive::protocol
