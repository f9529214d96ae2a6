// ProtocolStream: protocol messages over a Channel with their sequence numbers enforced. Each
// direction numbers its messages 0, 1, 2, ...; a receive helper that rejects any gap,
// duplicate or reordering means a message cannot be dropped, repeated or moved within a
// connection without the receiver noticing (QEMU COLO's explicit-sequence discipline).
#pragma once

#include <cstdint>

#include "relive/result.h"
#include "security/channel.h"
#include "wire/protocol_types.h"

namespace relive::security {

class ProtocolStream {
 public:
  // `channel` must outlive this object.
  explicit ProtocolStream(Channel* channel) : channel_(channel) {}

  // Sends `body` with the next outgoing sequence number; returns that number.
  Result<uint64_t> send(protocol::MessageBody body);

  // The next message. Corruption when its sequence number is not the one expected; the
  // stream is then broken (as is the channel after any error).
  Result<protocol::Message> recv();

  Channel& channel() { return *channel_; }

 private:
  Channel* channel_;
  uint64_t next_send_ = 0;
  uint64_t next_recv_ = 0;
  Status error_;
};

}  // namespace relive::security
