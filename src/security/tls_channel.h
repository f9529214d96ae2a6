// TlsChannel: a Channel over TLS 1.3 on a connected TCP socket whose handshake has completed,
// and the OpenSSL I/O helpers it and the handshake in listener.cc share. Internal to
// src/security/; built by Listener and connect_channel (listener.h).
#pragma once

#include <signal.h>

#include <string>
#include <string_view>

#include "security/openssl_util.h"
#include "security/stream_channel.h"

namespace relive::security {

// Sent by a TLS server right after the handshake, before any frame (schemas/protocol.capnp).
inline constexpr std::string_view kAuthConfirmation{"RLVAUTH1", 8};

class TlsChannel final : public StreamChannel {
 public:
  // `ssl` has completed its handshake on `fd`.
  TlsChannel(ScopedFd fd, SslPtr ssl, PeerIdentity peer, std::chrono::milliseconds timeout)
      : StreamChannel(std::move(fd), std::move(peer), timeout), ssl_(std::move(ssl)) {}
  ~TlsChannel() override { close(); }
  void close() override;

  // TLS 1.3 finishes the client's handshake before the server has judged the client's
  // certificate, so the server confirms with kAuthConfirmation once it has; the client waits
  // for it. A refused client thus fails in connect_channel, with the server's reason.
  Status confirm_authentication(bool server, transport::Deadline deadline);

 protected:
  Status write_bytes(std::string_view data, transport::Deadline deadline) override;
  Status read_bytes(char* buf, size_t len, transport::Deadline deadline) override;

 private:
  SslPtr ssl_;  // freed before the base class closes fd_
};

// Waits for whatever `ssl` needs after a call returned `rc` (more input, room to write);
// any other outcome is the call's failure as a Status.
Status wait_for_ssl(SSL* ssl, int fd, int rc, transport::Deadline deadline, const std::string& peer,
                    const char* what);

// Blocks SIGPIPE in this thread for its lifetime and discards one raised meanwhile: OpenSSL
// writes to the socket with write(2), which would otherwise kill the process when the peer has
// gone. The process's own SIGPIPE disposition is left alone.
class SigpipeBlocker {
 public:
  SigpipeBlocker();
  ~SigpipeBlocker();
  SigpipeBlocker(const SigpipeBlocker&) = delete;
  SigpipeBlocker& operator=(const SigpipeBlocker&) = delete;

 private:
  sigset_t old_mask_;
  bool was_pending_ = false;
};

}  // namespace relive::security
