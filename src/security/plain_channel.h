// PlainChannel: a Channel over plain TCP, for insecure mode only (ChannelOptions::insecure).
// Internal to src/security/; built by Listener and connect_channel (listener.h).
#pragma once

#include <string_view>

#include "security/stream_channel.h"

namespace relive::security {

class PlainChannel final : public StreamChannel {
 public:
  using StreamChannel::StreamChannel;
  ~PlainChannel() override { close(); }
  void close() override { fd_.reset(); }

 protected:
  Status write_bytes(std::string_view data, transport::Deadline deadline) override;
  Status read_bytes(char* buf, size_t len, transport::Deadline deadline) override;
  Status bad_header(std::string_view header, Status parse_error) override;
};

}  // namespace relive::security
