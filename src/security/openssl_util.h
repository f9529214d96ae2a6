// Owners for OpenSSL objects and the one way OpenSSL failures become Statuses. Internal to
// src/security/.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>

#include "relive/status.h"

namespace relive::security {

template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

using SslCtxPtr = std::unique_ptr<SSL_CTX, OpenSslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpenSslDeleter<SSL_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpenSslDeleter<EVP_PKEY_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION_free>>;

// Drains OpenSSL's thread-local error queue into one line ("error:0A000086:...; ...").
std::string drain_openssl_errors();

// Status::IoError("<context>: <OpenSSL errors>"). Also clears the error queue, so that stale
// errors never leak into the next operation's message.
Status openssl_error(std::string_view context);

// The certificate's subject as one line ("CN = relive-a").
std::string subject_line(X509* cert);

}  // namespace relive::security
