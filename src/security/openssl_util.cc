#include "security/openssl_util.h"

#include <openssl/err.h>

namespace relive::security {

std::string drain_openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error recorded" : out;
}

Status openssl_error(std::string_view context) {
  return Status::IoError(std::string(context) + ": " + drain_openssl_errors());
}

std::string subject_line(X509* cert) {
  if (cert == nullptr) return "";
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return "?";
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_ONELINE);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : "";
}

}  // namespace relive::security
