#include "security/tls_channel.h"

#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include "security/tls_context.h"

namespace relive::security {

using transport::Deadline;

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
