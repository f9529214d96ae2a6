#include "security/keys.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <ctime>

#include "common/file_util.h"
#include "common/scoped_fd.h"
#include "security/openssl_util.h"

namespace relive::security {
namespace {

constexpr long kDay = 24 * 3600;
constexpr int kMaxDays = 36500;
// notBefore lies an hour back so that hosts with slightly different clocks agree at once.
constexpr long kClockSlack = 3600;

struct KeyPair {
  X509Ptr cert;
  PkeyPtr key;
};

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Temporary file + fsync + rename, created with `mode` so a private key is never readable by
// others, not even while it is being written.
Status write_private_file(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmp";
  ScopedFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return PosixError("open " + tmp, errno);
  if (::fchmod(fd.get(), mode) != 0) return PosixError("chmod " + tmp, errno);
  RELIVE_RETURN_IF_ERROR(write_all(fd.get(), data));
  if (::fsync(fd.get()) != 0) return PosixError("fsync " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return PosixError("rename " + path, errno);
  return Status::Ok();
}

Result<PkeyPtr> generate_key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return openssl_error("generate Ed25519 key");
  return key;
}

Status add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return openssl_error(fmt::format("add extension {}={}", OBJ_nid2sn(nid), value));
  }
  return Status::Ok();
}

Status set_validity(X509* cert, int days) {
  long not_after = days * kDay;
  if (days <= 0) not_after -= kClockSlack;  // surely in the past
  long not_before = std::min(-kClockSlack, not_after - kDay);
  if (!X509_gmtime_adj(X509_getm_notBefore(cert), not_before) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert), not_after)) {
    return openssl_error("set certificate validity");
  }
  return Status::Ok();
}

Status set_identity(X509* cert, const std::string& cn) {
  uint64_t serial = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1) {
    return openssl_error("random serial");
  }
  serial >>= 1;  // serials are positive
  X509_NAME* name = X509_get_subject_name(cert);
  if (X509_set_version(cert, X509_VERSION_3) != 1 ||
      ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial) != 1 ||
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("relive"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return openssl_error("set certificate subject");
  }
  return Status::Ok();
}

// The extensions that make a certificate a CA or a host (server and client) certificate.
Status add_role_extensions(X509* cert, X509* issuer, const std::string* host) {
  if (host == nullptr) {
    RELIVE_RETURN_IF_ERROR(add_extension(cert, cert, NID_basic_constraints, "critical,CA:TRUE"));
    RELIVE_RETURN_IF_ERROR(
        add_extension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign"));
    return add_extension(cert, cert, NID_subject_key_identifier, "hash");
  }
  std::string san = "DNS:" + *host;
  RELIVE_RETURN_IF_ERROR(add_extension(cert, issuer, NID_basic_constraints, "critical,CA:FALSE"));
  // Not critical: QEMU's TLS (VM migration, migrate/qemu_tls.h) refuses a host certificate whose
  // critical key usage lacks keyEncipherment, which an Ed25519 key cannot do. The extended key
  // usage below still limits the certificate to TLS authentication.
  RELIVE_RETURN_IF_ERROR(add_extension(cert, issuer, NID_key_usage, "digitalSignature"));
  RELIVE_RETURN_IF_ERROR(add_extension(cert, issuer, NID_ext_key_usage, "serverAuth,clientAuth"));
  RELIVE_RETURN_IF_ERROR(add_extension(cert, issuer, NID_subject_alt_name, san.c_str()));
  RELIVE_RETURN_IF_ERROR(add_extension(cert, issuer, NID_subject_key_identifier, "hash"));
  return add_extension(cert, issuer, NID_authority_key_identifier, "keyid:always");
}

// A certificate for `key` named `cn`: self-signed CA when `ca` is null, else a host certificate
// for `*host` signed by `ca`.
Result<X509Ptr> make_certificate(EVP_PKEY* key, const std::string& cn, int days, const KeyPair* ca,
                                 const std::string* host) {
  X509Ptr cert(X509_new());
  if (!cert) return openssl_error("X509_new");
  RELIVE_RETURN_IF_ERROR(set_identity(cert.get(), cn));
  RELIVE_RETURN_IF_ERROR(set_validity(cert.get(), days));
  X509* issuer = ca ? ca->cert.get() : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return openssl_error("set certificate issuer and key");
  }
  RELIVE_RETURN_IF_ERROR(add_role_extensions(cert.get(), issuer, host));
  // Ed25519 signs the message itself: no separate digest.
  if (X509_sign(cert.get(), ca ? ca->key.get() : key, nullptr) <= 0) {
    return openssl_error("sign certificate " + cn);
  }
  return cert;
}

Status write_pair(const KeyPair& pair, const std::string& cert_path, const std::string& key_path) {
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), pair.cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), pair.key.get(), nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    return openssl_error("encode " + cert_path);
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(key_bio.get(), &data);
  RELIVE_RETURN_IF_ERROR(write_private_file(key_path, std::string_view(data, n), 0600));
  n = BIO_get_mem_data(cert_bio.get(), &data);
  return write_private_file(cert_path, std::string_view(data, n), 0644);
}

Result<KeyPair> load_pair(const std::string& cert_path, const std::string& key_path) {
  BioPtr cert_bio(BIO_new_file(cert_path.c_str(), "r"));
  BioPtr key_bio(BIO_new_file(key_path.c_str(), "r"));
  if (!cert_bio || !key_bio) return openssl_error("open " + cert_path + " / " + key_path);
  KeyPair pair{X509Ptr(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)),
               PkeyPtr(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr))};
  if (!pair.cert || !pair.key) return openssl_error("read " + cert_path + " / " + key_path);
  if (X509_check_private_key(pair.cert.get(), pair.key.get()) != 1) {
    return openssl_error(key_path + " does not match " + cert_path);
  }
  return pair;
}

// Whether to (re)generate a pair: both files present and no force means keep; one file
// without the other is a damaged directory that only --force may repair.
Result<bool> needs_generation(const std::string& cert, const std::string& key, bool force) {
  if (force) return true;
  bool have_cert = exists(cert), have_key = exists(key);
  if (have_cert && have_key) return false;
  if (have_cert || have_key) {
    return Status::InvalidArgument(fmt::format("{} exists without {}; remove it or use --force",
                                               have_cert ? cert : key, have_cert ? key : cert));
  }
  return true;
}

Result<KeyPair> ensure_ca(const KeyInitOptions& o, KeyInitReport* report) {
  std::string cert = o.dir + "/ca.crt", key = o.dir + "/ca.key";
  RELIVE_ASSIGN_OR_RETURN(bool generate, needs_generation(cert, key, o.force));
  if (!generate) {
    report->kept.insert(report->kept.end(), {cert, key});
    return load_pair(cert, key);
  }
  KeyPair ca;
  RELIVE_ASSIGN_OR_RETURN(ca.key, generate_key());
  RELIVE_ASSIGN_OR_RETURN(ca.cert,
                          make_certificate(ca.key.get(), "relive CA", o.ca_days, nullptr, nullptr));
  RELIVE_RETURN_IF_ERROR(write_pair(ca, cert, key));
  report->created.insert(report->created.end(), {cert, key});
  return ca;
}

Status ensure_host(const KeyInitOptions& o, const KeyPair& ca, const std::string& host,
                   KeyInitReport* report) {
  HostKeyFiles f = host_key_files(o.dir, host);
  RELIVE_ASSIGN_OR_RETURN(bool generate, needs_generation(f.cert, f.key, o.force));
  if (!generate) {
    report->kept.insert(report->kept.end(), {f.cert, f.key});
    return Status::Ok();
  }
  KeyPair pair;
  RELIVE_ASSIGN_OR_RETURN(pair.key, generate_key());
  RELIVE_ASSIGN_OR_RETURN(pair.cert, make_certificate(pair.key.get(), host, o.days, &ca, &host));
  RELIVE_RETURN_IF_ERROR(write_pair(pair, f.cert, f.key));
  report->created.insert(report->created.end(), {f.cert, f.key});
  return Status::Ok();
}

}  // namespace

bool valid_host_name(const std::string& name) {
  if (name.empty() || name.size() > 253 || name == "ca") return false;
  size_t label = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '.') {
      if (label == 0 || name[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label > 0);
    if (!ok || ++label > 63) return false;
  }
  return label > 0 && name.back() != '-';
}

HostKeyFiles host_key_files(const std::string& dir, const std::string& host) {
  return {dir + "/ca.crt", dir + "/" + host + ".crt", dir + "/" + host + ".key"};
}

Result<KeyInitReport> init_keys(const KeyInitOptions& o) {
  if (o.dir.empty()) return Status::InvalidArgument("no key directory given");
  if (o.hosts.empty()) return Status::InvalidArgument("no host names given");
  for (const std::string& h : o.hosts) {
    if (!valid_host_name(h)) {
      return Status::InvalidArgument(
          fmt::format("bad host name '{}': use lowercase DNS labels (a-z, 0-9, '-'), not 'ca'", h));
    }
  }
  // A century bounds the arithmetic on validity times; a CA must be valid now.
  if (o.days < -kMaxDays || o.days > kMaxDays || o.ca_days < 1 || o.ca_days > kMaxDays) {
    return Status::InvalidArgument(fmt::format(
        "certificate lifetimes must be within ±{} days (CA: 1..{})", kMaxDays, kMaxDays));
  }
  RELIVE_RETURN_IF_ERROR(make_dirs(o.dir));
  KeyInitReport report;
  RELIVE_ASSIGN_OR_RETURN(KeyPair ca, ensure_ca(o, &report));
  for (const std::string& h : o.hosts) RELIVE_RETURN_IF_ERROR(ensure_host(o, ca, h, &report));
  return report;
}

}  // namespace relive::security
