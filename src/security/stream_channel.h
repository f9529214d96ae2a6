// StreamChannel: the framing the two Channel implementations over a connected TCP socket share,
// TLS (tls_channel.h) and plaintext (plain_channel.h); they differ only in how bytes move.
// Internal to src/security/; build channels through Listener and connect_channel (listener.h).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/scoped_fd.h"
#include "security/channel.h"
#include "transport/tcp_socket.h"

namespace relive::security {

// Frames on top of a byte stream: reads and checks the 16-byte header, then exactly the
// payload it announces. Errors are sticky (see Channel).
class StreamChannel : public Channel {
 public:
  StreamChannel(ScopedFd fd, PeerIdentity peer, std::chrono::milliseconds timeout)
      : fd_(std::move(fd)), peer_(std::move(peer)), timeout_(timeout) {}

  Status send_message(std::string_view frame) override;
  Result<std::string> recv_message() override;
  Status send_raw(std::string_view bytes) override;
  Status recv_raw(char* buf, size_t len) override;
  const PeerIdentity& peer() const override { return peer_; }
  void set_timeout(std::chrono::milliseconds timeout) override { timeout_ = timeout; }

 protected:
  virtual Status write_bytes(std::string_view data, transport::Deadline deadline) = 0;
  virtual Status read_bytes(char* buf, size_t len, transport::Deadline deadline) = 0;
  // Explains a frame header that failed to parse; overridable for transport-specific hints.
  virtual Status bad_header(std::string_view header, Status parse_error);

  Status fail(Status s);
  ScopedFd fd_;
  PeerIdentity peer_;

 private:
  std::chrono::milliseconds timeout_;
  Status error_;
};

}  // namespace relive::security
