// TLS 1.3 contexts for relive channels and the translation of OpenSSL's verdicts into Statuses
// a person can act on. Internal to src/security/.
#pragma once

#include <string>

#include "relive/result.h"
#include "security/channel.h"
#include "security/openssl_util.h"

namespace relive::security {

// A context that presents options.cert_file/key_file and demands a peer certificate signed by
// options.ca_file. TLS 1.3 only; no session tickets (every connection authenticates afresh).
Result<SslCtxPtr> make_tls_context(const ChannelOptions& options, bool server);

// Why the handshake on `ssl` failed, after SSL_get_error returned `ssl_error`; drains the
// OpenSSL error queue. Refusals of the peer's (or of our) certificate are Aborted with a message
// naming the cause; other failures are IoError. `expected_name` is the pinned peer name, if any;
// `rejected_subject` the subject of the certificate that failed verification, if known.
Status handshake_failure(SSL* ssl, int ssl_error, const std::string& peer,
                         const std::string& expected_name, const std::string& rejected_subject);

// Why a read or write on an established connection failed (SSL_ERROR_SSL or SYSCALL),
// including the peer's refusal alerts that TLS 1.3 delivers after the client's handshake.
Status connection_failure(int ssl_error, const std::string& peer);

// The verified peer's identity; call after a successful handshake.
PeerIdentity identity_of(SSL* ssl, const std::string& address);

}  // namespace relive::security
