// Listener and connector for Channels over TCP: TLS 1.3 with mutual certificate authentication,
// or plaintext when (and only when) ChannelOptions::insecure is set. A TLS peer is verified
// during the handshake, before any application byte is read from it; a refusal is a Status
// that says why (no certificate, foreign CA, expired, wrong host name, not speaking TLS).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/scoped_fd.h"
#include "relive/result.h"
#include "security/channel.h"
#include "security/openssl_util.h"

namespace relive::security {

// A TCP connection accepted but not yet authenticated; nothing has been read from it.
struct PendingConnection {
  ScopedFd fd;
  std::string peer;  // "ADDR:PORT"
};

// Accepts connections on one address. Move-only; owns its socket and TLS context.
// Accepting and authenticating are separate steps so that a server can hand the handshake of
// each connection to a worker: accept_connection() on one thread, handshake() on any.
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

  // The next TCP connection, waiting at most `wait` for it (a Status containing "timed out"
  // when none came). Reads nothing from the peer.
  Result<PendingConnection> accept_connection(std::chrono::milliseconds wait);

  // Authenticates `connection` (TLS handshake, or nothing when insecure), taking at most
  // options.timeout. Thread-safe: handshakes of several connections may run at once; the
  // Listener must outlive the call.
  Result<std::unique_ptr<Channel>> handshake(PendingConnection connection) const;

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
