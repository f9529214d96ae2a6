// The key material of a relive cluster: one private CA and, per host, a certificate it signed.
// Every relived channel authenticates both ends against this CA (security/listener.h).
//
// A key directory holds ca.crt, ca.key and NAME.crt / NAME.key per host, PEM-encoded. Keys are
// Ed25519 and written with mode 0600; host certificates carry subjectAltName DNS:NAME and
// extendedKeyUsage serverAuth, clientAuth, so a host is both server and client.
#pragma once

#include <string>
#include <vector>

#include "relive/result.h"

namespace relive::security {

struct KeyInitOptions {
  std::string dir;
  std::vector<std::string> hosts;
  // Host certificate lifetime. Zero or negative issues an already expired certificate
  // (notAfter = now + days, in the past), which is how the tests make one.
  int days = 365;
  int ca_days = 3650;
  // Replace existing files; otherwise existing keys are kept and reused.
  bool force = false;
};

struct KeyInitReport {
  std::vector<std::string> created;  // paths written
  std::vector<std::string> kept;     // paths that existed and were left alone
};

// Creates `dir` if needed, then the CA unless it exists, then each host's key and certificate
// unless they exist. With `force`, everything named is regenerated. InvalidArgument for a host
// name that is not a DNS label sequence; IoError when OpenSSL or the file system fails.
Result<KeyInitReport> init_keys(const KeyInitOptions& options);

// Paths of a host's files in a key directory.
struct HostKeyFiles {
  std::string ca_cert;
  std::string cert;
  std::string key;
};
HostKeyFiles host_key_files(const std::string& dir, const std::string& host);

// True when `name` is usable as a host name and file name: DNS labels of [a-z0-9-], 1..63
// bytes each, 253 at most, not starting or ending a label with '-'.
bool valid_host_name(const std::string& name);

}  // namespace relive::security
