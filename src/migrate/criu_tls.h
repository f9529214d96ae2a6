// CRIU's own TLS for its page-server link (post-copy pages flow CRIU to CRIU, not through
// relive's channel): the same cluster keys, so the same CA authenticates both ends. CRIU checks
// the certificate's CA signature; the host name check is ours (relive's channel already
// verified the peer), hence --tls-no-cn-verify.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "security/keys.h"

namespace relive::migrate {

inline std::vector<std::string> criu_tls_args(const std::string& tls_dir, const std::string& node,
                                              bool insecure) {
  if (insecure) return {};
  // Absolute: CRIU changes into its images directory before it opens them.
  std::error_code ec;
  std::string dir = std::filesystem::absolute(tls_dir, ec).string();
  security::HostKeyFiles f = security::host_key_files(dir, node);
  return {"--tls", "--tls-cacert", f.ca_cert, "--tls-cert",
          f.cert,  "--tls-key",    f.key,     "--tls-no-cn-verify"};
}

}  // namespace relive::migrate
