#include "security/stream_channel.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <cerrno>

#include "security/tls_context.h"
#include "wire/protocol_codec.h"

namespace relive::security {

using transport::Deadline;

Status StreamChannel::fail(Status s) {
  error_ = s;
  return s;
}

Status StreamChannel::send_message(std::string_view frame) {
  if (!error_.ok()) return error_;
  if (!fd_.valid()) return Status::Aborted("channel is closed");
  Result<wire::ProtocolFrameHeader> h = wire::parse_frame_header(frame);
  if (!h.ok() || frame.size() != wire::kProtocolHeaderBytes + h->payload_length) {
    return Status::InvalidArgument("send_message needs exactly one well-formed frame");
  }
  Status s = write_bytes(frame, Deadline::after(timeout_));
  return s.ok() ? s : fail(s.with_context("send to " + peer_.address));
}

Status StreamChannel::bad_header(std::string_view header, Status parse_error) {
  return parse_error;
}

Result<std::string> StreamChannel::recv_message() {
  if (!error_.ok()) return error_;
  if (!fd_.valid()) return Status::Aborted("channel is closed");
  Deadline deadline = Deadline::after(timeout_);
  std::string frame(wire::kProtocolHeaderBytes, '\0');
  Status s = read_bytes(frame.data(), frame.size(), deadline);
  if (!s.ok()) return fail(s.with_context("receive from " + peer_.address));
  Result<wire::ProtocolFrameHeader> h = wire::parse_frame_header(frame);
  if (!h.ok()) {
    return fail(bad_header(frame, h.status()).with_context("frame from " + peer_.address));
  }
  frame.resize(wire::kProtocolHeaderBytes + h->payload_length);
  s = read_bytes(frame.data() + wire::kProtocolHeaderBytes, h->payload_length, deadline);
  if (!s.ok()) return fail(s.with_context("receive from " + peer_.address));
  return frame;
}

Status StreamChannel::send_raw(std::string_view bytes) {
  if (!error_.ok()) return error_;
  if (!fd_.valid()) return Status::Aborted("channel is closed");
  Status s = write_bytes(bytes, Deadline::after(timeout_));
  return s.ok() ? s : fail(s.with_context("send to " + peer_.address));
}

Status StreamChannel::recv_raw(char* buf, size_t len) {
  if (!error_.ok()) return error_;
  if (!fd_.valid()) return Status::Aborted("channel is closed");
  Status s = read_bytes(buf, len, Deadline::after(timeout_));
  return s.ok() ? s : fail(s.with_context("receive from " + peer_.address));
}

Status PlainChannel::write_bytes(std::string_view data, Deadline deadline) {
  return transport::send_all(fd_.get(), data, deadline);
}

Status PlainChannel::read_bytes(char* buf, size_t len, Deadline deadline) {
  return transport::recv_exact(fd_.get(), buf, len, deadline);
}

// A TLS record starts with content type 0x16 (handshake) and major version 3.
Status PlainChannel::bad_header(std::string_view header, Status parse_error) {
  if (header.size() >= 2 && header[0] == 0x16 && header[1] == 0x03) {
    return Status::Aborted(
        "peer speaks TLS but this channel is in insecure (plaintext) mode; both ends must "
        "choose the same mode");
  }
  return parse_error;
}

void TlsChannel::close() {
  if (ssl_ && fd_.valid()) {
    SigpipeBlocker no_sigpipe;
    SSL_shutdown(ssl_.get());  // one close_notify, no waiting for the peer's
    ERR_clear_error();
  }
  ssl_.reset();
  fd_.reset();
}

Status TlsChannel::confirm_authentication(bool server, Deadline deadline) {
  if (server) return write_bytes(kAuthConfirmation, deadline);
  std::string got(kAuthConfirmation.size(), '\0');
  RELIVE_RETURN_IF_ERROR(read_bytes(got.data(), got.size(), deadline));
  if (got != kAuthConfirmation) {
    return Status::Corruption("peer did not confirm authentication (not a relive agent?)");
  }
  return Status::Ok();
}

Status TlsChannel::write_bytes(std::string_view data, Deadline deadline) {
  SigpipeBlocker no_sigpipe;
  while (!data.empty()) {
    size_t n = 0;
    int rc = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
    if (rc == 1) {
      data.remove_prefix(n);
      continue;
    }
    RELIVE_RETURN_IF_ERROR(
        wait_for_ssl(ssl_.get(), fd_.get(), rc, deadline, peer_.address, "sending"));
  }
  return Status::Ok();
}

Status TlsChannel::read_bytes(char* buf, size_t len, Deadline deadline) {
  // Reading can make TLS write (key updates, alerts).
  SigpipeBlocker no_sigpipe;
  while (len > 0) {
    size_t n = 0;
    int rc = SSL_read_ex(ssl_.get(), buf, len, &n);
    if (rc == 1) {
      buf += n;
      len -= n;
      continue;
    }
    RELIVE_RETURN_IF_ERROR(
        wait_for_ssl(ssl_.get(), fd_.get(), rc, deadline, peer_.address, "receiving"));
  }
  return Status::Ok();
}

Status wait_for_ssl(SSL* ssl, int fd, int rc, Deadline deadline, const std::string& peer,
                    const char* what) {
  int err = SSL_get_error(ssl, rc);
  if (err == SSL_ERROR_WANT_READ) return transport::wait_ready(fd, POLLIN, deadline, what);
  if (err == SSL_ERROR_WANT_WRITE) return transport::wait_ready(fd, POLLOUT, deadline, what);
  return connection_failure(err, peer);
}

SigpipeBlocker::SigpipeBlocker() {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask_);
  sigset_t pending;
  sigpending(&pending);
  was_pending_ = sigismember(&pending, SIGPIPE) == 1;
}

SigpipeBlocker::~SigpipeBlocker() {
  sigset_t pending;
  sigpending(&pending);
  if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    timespec zero{};
    sigtimedwait(&pipe_only, nullptr, &zero);  // consume the SIGPIPE we caused
  }
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

}  // namespace relive::security
