// The two Channel implementations over a connected TCP socket: TLS (TlsChannel) and plaintext
// (PlainChannel). They share the framing (StreamChannel) and differ only in how bytes move.
// Internal to src/security/; build them through Listener and connect_channel.
#pragma once

#include <signal.h>

#include <chrono>
#include <string>
#include <string_view>

#include "common/scoped_fd.h"
#include "security/channel.h"
#include "security/openssl_util.h"
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
