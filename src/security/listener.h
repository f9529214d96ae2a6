// Listener and connector for Channels over TCP: TLS 1.3 with mutual certificate authentication,
// or plaintext when (and only when) ChannelOptions::insecure is set. A TLS peer is verified
// during the handshake, before any application byte is read from it; a refusal is a Status
// that says why (no certificate, foreign CA, expired, wrong host name, not speaking TLS).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/scoped_fd.h"
#include "relive/result.h"
#include "security/channel.h"
#include "security/openssl_util.h"

namespace relive::security {

// Accepts connections on one address. Move-only; owns its socket and TLS context.
class Listener {
 public:
  // Binds `host` (numeric, e.g. "127.0.0.1") and `port` (0: ephemeral). Fails at once when the
  // TLS files cannot be loaded.
  static Result<Listener> create(const std::string& host, uint16_t port,
                                 const ChannelOptions& options);

  uint16_t port() const { return port_; }

  // The next authenticated connection, waiting at most options.timeout for it to arrive and
  // as long again for its handshake. A peer that fails authentication is closed and reported
  // as the Status; call accept() again to serve the next one.
  Result<std::unique_ptr<Channel>> accept();

 private:
  Listener(ScopedFd fd, uint16_t port, SslCtxPtr ctx, ChannelOptions options)
      : fd_(std::move(fd)), port_(port), ctx_(std::move(ctx)), options_(std::move(options)) {}

  ScopedFd fd_;
  uint16_t port_ = 0;
  SslCtxPtr ctx_;  // null when insecure
  ChannelOptions options_;
};

// Connects to host:port and authenticates the server (and itself) as `options` say.
Result<std::unique_ptr<Channel>> connect_channel(const std::string& host, uint16_t port,
                                                 const ChannelOptions& options);

}  // namespace relive::security
