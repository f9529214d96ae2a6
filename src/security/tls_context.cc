#include "security/tls_context.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>

namespace relive::security {
namespace {

Status refused(const std::string& peer, const std::string& why) {
  return Status::Aborted(fmt::format("authentication with {} failed: {}", peer, why));
}

// Certificate verification verdicts, in the words an operator needs.
std::string verify_reason(long result) {
  switch (result) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return "peer certificate is not signed by the configured CA";
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "peer certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "peer certificate is not valid yet";
    case X509_V_ERR_HOSTNAME_MISMATCH:
      return "peer certificate is not for the expected host name";
    case X509_V_ERR_INVALID_PURPOSE:
      return "peer certificate is not allowed for TLS client/server use";
    default:
      return "peer certificate rejected";
  }
}

// Reasons carried by the OpenSSL error queue (peer alerts and local protocol errors).
std::string alert_reason(int reason) {
  switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return "peer presented no certificate";
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return "peer requires a certificate and this side presented none";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      return "peer refused our certificate: not signed by a CA it trusts";
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      return "peer refused our certificate: expired";
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
      return "peer refused our certificate";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
      return "peer is not speaking TLS (a plaintext or insecure-mode peer?)";
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return "peer does not speak TLS 1.3";
    default:
      return "";
  }
}

std::string first_dns_name(X509* cert) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return "";
  std::string out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && out.empty(); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = n->d.dNSName;
    out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
  }
  GENERAL_NAMES_free(names);
  return out;
}

// Verification callback: keeps the subject of a certificate that failed, so that the refusal
// (and the audit trail) can say who was turned away. OpenSSL does not keep a rejected
// certificate on the connection.
int remember_rejected(int ok, X509_STORE_CTX* store) {
  if (ok) return ok;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* subject = ssl ? static_cast<std::string*>(SSL_get_app_data(ssl)) : nullptr;
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (subject != nullptr && subject->empty() && leaf != nullptr) *subject = subject_line(leaf);
  return ok;
}

Status load_files(SSL_CTX* ctx, const ChannelOptions& o) {
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1) {
    return openssl_error("load certificate " + o.cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return openssl_error("load private key " + o.key_file);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return openssl_error(o.key_file + " does not match " + o.cert_file);
  }
  if (SSL_CTX_load_verify_file(ctx, o.ca_file.c_str()) != 1) {
    return openssl_error("load CA certificate " + o.ca_file);
  }
  return Status::Ok();
}

}  // namespace

Result<SslCtxPtr> make_tls_context(const ChannelOptions& o, bool server) {
  if (o.ca_file.empty() || o.cert_file.empty() || o.key_file.empty()) {
    return Status::InvalidArgument(
        "a TLS channel needs a CA certificate, a certificate and a key (or explicit insecure "
        "mode)");
  }
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) return openssl_error("SSL_CTX_new");
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
    return openssl_error("require TLS 1.3");
  }
  RELIVE_RETURN_IF_ERROR(load_files(ctx.get(), o));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     remember_rejected);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  if (server) SSL_CTX_set_num_tickets(ctx.get(), 0);
  return ctx;
}

Status handshake_failure(SSL* ssl, int ssl_error, const std::string& peer,
                         const std::string& expected_name, const std::string& rejected_subject) {
  long verdict = SSL_get_verify_result(ssl);
  if (verdict == X509_V_OK) return connection_failure(ssl_error, peer);
  ERR_clear_error();  // the queue only repeats "certificate verify failed"
  std::string subject = rejected_subject.empty() ? "" : "; subject " + rejected_subject;
  std::string why = verify_reason(verdict);
  if (verdict == X509_V_ERR_HOSTNAME_MISMATCH) why += " '" + expected_name + "'";
  return refused(peer,
                 fmt::format("{} ({}{})", why, X509_verify_cert_error_string(verdict), subject));
}

Status connection_failure(int ssl_error, const std::string& peer) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return Status::Aborted("peer closed the connection");
  if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    if (errno == 0 || errno == ECONNRESET || errno == EPIPE) {
      return Status::Aborted("peer closed the connection (no TLS close_notify)");
    }
    return PosixError("TLS with " + peer, errno);
  }
  int reason = ERR_GET_REASON(ERR_peek_error());
  std::string why = alert_reason(reason);
  std::string detail = drain_openssl_errors();
  if (!why.empty()) return refused(peer, fmt::format("{} ({})", why, detail));
  return Status::IoError(fmt::format("TLS with {}: {}", peer, detail));
}

PeerIdentity identity_of(SSL* ssl, const std::string& address) {
  PeerIdentity id;
  id.address = address;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert != nullptr) {
    id.subject = subject_line(cert);
    id.dns_name = first_dns_name(cert);
    id.authenticated = SSL_get_verify_result(ssl) == X509_V_OK;
  }
  return id;
}

}  // namespace relive::security
