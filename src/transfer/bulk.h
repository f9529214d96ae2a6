// Bulk data between migration agents: LZ4 segments (wire/segment.h) written raw on the channel
// right after the control message that announces them. The segment format checks itself
// (magic, sequence, checksum), so a cut or corrupted stream is an error, never bad data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "relive/result.h"
#include "security/channel.h"

namespace relive::transfer {

// Batches events (each at least 8 bytes; see schemas/migration.capnp) into segments of about
// kBatchBytes and sends them. `channel` must outlive the sender. Events are copied.
class BulkSender {
 public:
  static constexpr size_t kBatchBytes = 4u << 20;
  explicit BulkSender(security::Channel* channel) : channel_(channel) {}

  Status add(std::string_view event);
  // Sends what is batched. Call once after the last add().
  Status flush();
  uint64_t wire_bytes() const { return wire_bytes_; }
  uint64_t raw_bytes() const { return raw_bytes_; }

 private:
  security::Channel* channel_;
  std::string raw_;
  uint32_t count_ = 0;
  uint64_t seq_ = 0;
  uint64_t wire_bytes_ = 0;
  uint64_t raw_bytes_ = 0;
};

// Reads the segments a BulkSender sent. `channel` must outlive the receiver.
class BulkReceiver {
 public:
  explicit BulkReceiver(security::Channel* channel) : channel_(channel) {}
  // The events of the next segment.
  Result<std::vector<std::string>> next();
  uint64_t wire_bytes() const { return wire_bytes_; }

 private:
  security::Channel* channel_;
  uint64_t seq_ = 0;
  uint64_t wire_bytes_ = 0;
};

// Event header helpers: 8 bytes, two little-endian u32s.
std::string event_header(uint32_t a, uint32_t b);
uint32_t event_u32(std::string_view event, size_t at);
uint64_t event_u64(std::string_view event, size_t at);
void append_u64(std::string* out, uint64_t v);

}  // namespace relive::transfer
