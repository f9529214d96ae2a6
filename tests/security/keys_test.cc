#include "security/keys.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "security/openssl_util.h"
#include "security/test_keys.h"
#include "test_util.h"

namespace relive::security {
namespace {

using relive::testing::TempDir;
using testing::contains;

X509Ptr load_cert(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  return X509Ptr(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

// 0 when `cert` verifies against `ca` for TLS client and server use, else the X509 error.
int verify(X509* ca, X509* cert) {
  std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>> ctx(X509_STORE_CTX_new());
  X509_STORE_add_cert(store.get(), ca);
  X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr);
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  if (X509_verify_cert(ctx.get()) != 1) return X509_STORE_CTX_get_error(ctx.get());
  X509_STORE_CTX_cleanup(ctx.get());
  X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr);
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  return X509_verify_cert(ctx.get()) == 1 ? 0 : X509_STORE_CTX_get_error(ctx.get());
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

KeyInitOptions options(const std::string& dir, std::vector<std::string> hosts) {
  KeyInitOptions o;
  o.dir = dir;
  o.hosts = std::move(hosts);
  return o;
}

TEST(Keys, CreatesCaAndHostCertificatesThatVerify) {
  TempDir t;
  Result<KeyInitReport> r = init_keys(options(t / "k", {"alpha", "beta.example"}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->created.size(), 6u);
  X509Ptr ca = load_cert(t / "k/ca.crt");
  ASSERT_TRUE(ca);
  for (const char* host : {"alpha", "beta.example"}) {
    X509Ptr cert = load_cert(t / "k/" + host + ".crt");
    ASSERT_TRUE(cert);
    EXPECT_EQ(verify(ca.get(), cert.get()), 0) << host;
    EXPECT_EQ(X509_check_host(cert.get(), host, 0, 0, nullptr), 1) << host;
    EXPECT_EQ(mode_of(t / "k/" + host + ".key"), 0600u);
  }
  EXPECT_EQ(mode_of(t / "k/ca.key"), 0600u);
}

TEST(Keys, RerunKeepsExistingKeysAndAddsNewHosts) {
  TempDir t;
  ASSERT_TRUE(init_keys(options(t.path(), {"alpha"})).ok());
  std::string ca_before = relive::testing::read_all(t / "ca.key");
  std::string alpha_before = relive::testing::read_all(t / "alpha.key");
  Result<KeyInitReport> r = init_keys(options(t.path(), {"alpha", "beta"}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->kept.size(), 4u);
  EXPECT_EQ(r->created.size(), 2u);
  EXPECT_EQ(relive::testing::read_all(t / "ca.key"), ca_before);
  EXPECT_EQ(relive::testing::read_all(t / "alpha.key"), alpha_before);
  X509Ptr ca = load_cert(t / "ca.crt");
  X509Ptr beta = load_cert(t / "beta.crt");
  EXPECT_EQ(verify(ca.get(), beta.get()), 0);  // issued by the kept CA
}

TEST(Keys, ForceReplacesKeys) {
  TempDir t;
  ASSERT_TRUE(init_keys(options(t.path(), {"alpha"})).ok());
  std::string before = relive::testing::read_all(t / "alpha.key");
  KeyInitOptions o = options(t.path(), {"alpha"});
  o.force = true;
  ASSERT_TRUE(init_keys(o).ok());
  EXPECT_NE(relive::testing::read_all(t / "alpha.key"), before);
}

TEST(Keys, RefusesHalfPresentPairWithoutForce) {
  TempDir t;
  ASSERT_TRUE(init_keys(options(t.path(), {"alpha"})).ok());
  ASSERT_EQ(::unlink((t / "alpha.key").c_str()), 0);
  Result<KeyInitReport> r = init_keys(options(t.path(), {"alpha"}));
  EXPECT_TRUE(contains(r.status(), "exists without")) << r.status().to_string();
}

TEST(Keys, NegativeDaysIssuesExpiredCertificate) {
  TempDir t;
  KeyInitOptions o = options(t.path(), {"old"});
  o.days = -1;
  ASSERT_TRUE(init_keys(o).ok());
  X509Ptr ca = load_cert(t / "ca.crt");
  X509Ptr old = load_cert(t / "old.crt");
  EXPECT_EQ(verify(ca.get(), old.get()), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST(Keys, RejectsBadHostNames) {
  TempDir t;
  for (const char* bad : {"", "UPPER", "a_b", "-a", "a-", "a..b", "ca", "../etc", "a/b"}) {
    Result<KeyInitReport> r = init_keys(options(t.path(), {bad}));
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(valid_host_name("node-1.dc2.example"));
}

TEST(Keys, RejectsAbsurdLifetimes) {
  TempDir t;
  KeyInitOptions o = options(t.path(), {"alpha"});
  o.days = 1 << 30;
  EXPECT_EQ(init_keys(o).status().code(), Status::Code::kInvalidArgument);
  o.days = 1;
  o.ca_days = 0;
  EXPECT_EQ(init_keys(o).status().code(), Status::Code::kInvalidArgument);
}

TEST(KeysCommand, InitCreatesUsableKeysAndKeepsThemOnRerun) {
  std::string bin = relive::testing::relive_bin();
  ASSERT_EQ(::access(bin.c_str(), X_OK), 0) << "no relive binary at " << bin;
  TempDir t;
  auto r = relive::testing::run({bin, "keys", "init", t / "k", "--hosts", "alpha,beta"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("created " + t / "k/beta.key"), std::string::npos) << r.out;
  X509Ptr ca = load_cert(t / "k/ca.crt");
  X509Ptr beta = load_cert(t / "k/beta.crt");
  ASSERT_TRUE(ca && beta);
  EXPECT_EQ(verify(ca.get(), beta.get()), 0);
  std::string key = relive::testing::read_all(t / "k/beta.key");
  r = relive::testing::run({bin, "keys", "init", t / "k", "--hosts", "beta"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kept"), std::string::npos) << r.out;
  EXPECT_EQ(relive::testing::read_all(t / "k/beta.key"), key);
  r = relive::testing::run({bin, "keys", "init", t / "k", "--hosts", "Bad_Name"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("bad host name"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace relive::security
