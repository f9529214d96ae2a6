#include "security/listener.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "security/plain_channel.h"
#include "security/tls_channel.h"
#include "security/tls_context.h"
#include "transport/tcp_socket.h"
#include "wire/protocol_codec.h"

namespace relive::security {
namespace {

using transport::Deadline;

// TLS handshake records start with 0x16; a plaintext relive frame starts with its magic "RLPM".
// Looking at the first byte before the handshake turns OpenSSL's "wrong version number" into
// an error that names the mistake.
Status check_speaks_tls(int fd, const std::string& peer, Deadline deadline) {
  RELIVE_RETURN_IF_ERROR(transport::wait_ready(fd, POLLIN, deadline, "TLS hello from " + peer));
  char first = 0;
  ssize_t n = ::recv(fd, &first, 1, MSG_PEEK);
  if (n == 0) return Status::Aborted(peer + " closed the connection before the TLS handshake");
  if (n < 0) return PosixError("recv from " + peer, errno);
  if (first == 0x16) return Status::Ok();
  std::string what = first == 'R' ? "plaintext relive frames (peer is in insecure mode)"
                                  : "bytes that are not TLS";
  return Status::Aborted(fmt::format(
      "authentication with {} failed: peer sent {}; this side requires TLS", peer, what));
}

// Drives SSL_accept/SSL_connect to completion on a non-blocking socket.
Status handshake_steps(SSL* ssl, int fd, bool server, Deadline deadline, const std::string& peer,
                       const std::string& expected_name, const std::string* rejected_subject) {
  for (;;) {
    ERR_clear_error();
    int rc = server ? SSL_accept(ssl) : SSL_connect(ssl);
    if (rc == 1) return Status::Ok();
    int err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      short events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
      RELIVE_RETURN_IF_ERROR(
          transport::wait_ready(fd, events, deadline, "TLS handshake with " + peer));
      continue;
    }
    return handshake_failure(ssl, err, peer, expected_name, *rejected_subject);
  }
}

Status run_handshake(SSL* ssl, int fd, bool server, Deadline deadline, const std::string& peer,
                     const std::string& expected_name) {
  SigpipeBlocker no_sigpipe;
  std::string rejected_subject;
  SSL_set_app_data(ssl, &rejected_subject);
  Status s = handshake_steps(ssl, fd, server, deadline, peer, expected_name, &rejected_subject);
  SSL_set_app_data(ssl, nullptr);  // the string dies with this frame; the SSL lives on
  return s;
}

// Wraps a connected socket in TLS and authenticates the peer; nothing is read from it as
// application data until this has succeeded.
Result<std::unique_ptr<Channel>> secure(SSL_CTX* ctx, ScopedFd fd, const std::string& peer,
                                        const ChannelOptions& o, bool server) {
  Deadline deadline = Deadline::after(o.timeout);
  if (server) RELIVE_RETURN_IF_ERROR(check_speaks_tls(fd.get(), peer, deadline));
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1) return openssl_error("SSL_new");
  // The expected name is checked against the peer's certificate in both directions.
  if (!o.expected_peer_name.empty() &&
      SSL_set1_host(ssl.get(), o.expected_peer_name.c_str()) != 1) {
    return openssl_error("expect peer name " + o.expected_peer_name);
  }
  RELIVE_RETURN_IF_ERROR(
      run_handshake(ssl.get(), fd.get(), server, deadline, peer, o.expected_peer_name));
  PeerIdentity id = identity_of(ssl.get(), peer);
  auto channel =
      std::make_unique<TlsChannel>(std::move(fd), std::move(ssl), std::move(id), o.timeout);
  RELIVE_RETURN_IF_ERROR(channel->confirm_authentication(server, deadline)
                             .with_context("awaiting authentication confirmation"));
  return std::unique_ptr<Channel>(std::move(channel));
}

std::unique_ptr<Channel> plain(ScopedFd fd, const std::string& peer, const ChannelOptions& o) {
  PeerIdentity id;
  id.address = peer;
  return std::make_unique<PlainChannel>(std::move(fd), std::move(id), o.timeout);
}

}  // namespace

Result<Listener> Listener::create(const std::string& host, uint16_t port,
                                  const ChannelOptions& options) {
  SslCtxPtr ctx;
  if (!options.insecure) {
    RELIVE_ASSIGN_OR_RETURN(ctx, make_tls_context(options, /*server=*/true));
  }
  RELIVE_ASSIGN_OR_RETURN(ScopedFd fd, transport::tcp_listen(host, port));
  RELIVE_ASSIGN_OR_RETURN(uint16_t bound, transport::local_port(fd.get()));
  return Listener(std::move(fd), bound, std::move(ctx), options);
}

Result<std::unique_ptr<Channel>> Listener::accept() {
  RELIVE_ASSIGN_OR_RETURN(
      PendingConnection c,
      accept_connection(std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout)));
  return handshake(std::move(c));
}

Result<PendingConnection> Listener::accept_connection(std::chrono::milliseconds wait) {
  PendingConnection c;
  RELIVE_ASSIGN_OR_RETURN(c.fd, transport::tcp_accept(fd_.get(), Deadline::after(wait), &c.peer));
  return c;
}

Result<std::unique_ptr<Channel>> Listener::handshake(PendingConnection c) const {
  if (options_.insecure) return plain(std::move(c.fd), c.peer, options_);
  return secure(ctx_.get(), std::move(c.fd), c.peer, options_, /*server=*/true);
}

Result<std::unique_ptr<Channel>> connect_channel(const std::string& host, uint16_t port,
                                                 const ChannelOptions& options) {
  SslCtxPtr ctx;
  if (!options.insecure) {
    RELIVE_ASSIGN_OR_RETURN(ctx, make_tls_context(options, /*server=*/false));
  }
  RELIVE_ASSIGN_OR_RETURN(ScopedFd fd,
                          transport::tcp_connect(host, port, Deadline::after(options.timeout)));
  std::string peer = transport::peer_address(fd.get());
  if (options.insecure) return plain(std::move(fd), peer, options);
  return secure(ctx.get(), std::move(fd), peer, options, /*server=*/false);
}

Status send_protocol_message(Channel& channel, const protocol::Message& message) {
  return channel.send_message(wire::encode_message(message));
}

Result<protocol::Message> recv_protocol_message(Channel& channel) {
  RELIVE_ASSIGN_OR_RETURN(std::string frame, channel.recv_message());
  return wire::decode_message(frame);
}

ChannelOptions tls_options_for_host(const std::string& key_dir, const std::string& host,
                                    const std::string& expected_peer_name) {
  ChannelOptions o;
  o.ca_file = key_dir + "/ca.crt";
  o.cert_file = key_dir + "/" + host + ".crt";
  o.key_file = key_dir + "/" + host + ".key";
  o.expected_peer_name = expected_peer_name;
  return o;
}

}  // namespace relive::security
