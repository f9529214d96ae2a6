// Key directories and TLS helpers shared by the security tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "security/channel.h"
#include "security/keys.h"
#include "test_util.h"

namespace relive::security::testing {

// Two CAs' worth of keys: `dir` holds the cluster (hosts alpha, beta, and "old" whose
// certificate has expired), `foreign` another CA with its own alpha.
class KeyDirs {
 public:
  KeyDirs() {
    init(dir_.path(), {"alpha", "beta"}, 30);
    init(dir_.path(), {"old"}, -1);
    init(foreign_.path(), {"alpha"}, 30);
  }
  const std::string& dir() const { return dir_.path(); }
  const std::string& foreign() const { return foreign_.path(); }

  // TLS options for `host` from the cluster's CA, with a short timeout for tests.
  ChannelOptions options(const std::string& host, const std::string& expect = "") const {
    return short_timeout(tls_options_for_host(dir(), host, expect));
  }
  ChannelOptions foreign_options(const std::string& host) const {
    return short_timeout(tls_options_for_host(foreign(), host));
  }
  static ChannelOptions insecure() {
    ChannelOptions o;
    o.insecure = true;
    return short_timeout(o);
  }

 private:
  static ChannelOptions short_timeout(ChannelOptions o) {
    o.timeout = std::chrono::milliseconds(3000);
    return o;
  }
  static void init(const std::string& dir, std::vector<std::string> hosts, int days) {
    KeyInitOptions o;
    o.dir = dir;
    o.hosts = std::move(hosts);
    o.days = days;
    Result<KeyInitReport> r = init_keys(o);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  relive::testing::TempDir dir_;
  relive::testing::TempDir foreign_;
};

inline bool contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

}  // namespace relive::security::testing
