// EtcdLease: the HA pair's fence. The primary holds `key` in etcd, attached to an etcd lease and
// naming the holder; only the holder may release output or serve. Acquiring is one transaction
// "create the key if it does not exist" (compare create_revision == 0), so at most one peer holds
// it at a time, also under a partition: a side that cannot reach a majority of etcd cannot
// acquire or renew. When the holder stops renewing (it died, or it is cut off), etcd deletes the
// key when the TTL runs out and the other side's acquire succeeds.
//
// Talks to etcd's v3 JSON gateway (etcd 3.4: POST http://HOST:PORT/v3/..., base64 keys) over
// plain HTTP/1.1; every request is bounded by `timeout`. Endpoints are tried in order until one
// answers. Blocking; one EtcdLease may be used from one thread at a time.
//
// Errors: Aborted = the fence says no (key held by someone else, lease expired or revoked);
// IoError = etcd could not be asked (unreachable, timed out, refused the request). A caller must
// treat IoError from keepalive() as "maybe lost" and stop releasing output by valid_until.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ha/http_client.h"
#include "relive/result.h"

namespace relive::ha {

struct Lease {
  std::string key;
  std::string holder;
  int64_t id = 0;     // etcd lease ID
  int64_t ttl_s = 0;  // as granted / last renewed by etcd
  // Local, conservative end of the lease: the time the granting or renewing request was *sent*
  // plus the TTL etcd answered. etcd's own expiry is never earlier than this, so a holder that
  // stops acting at valid_until can never overlap with a new holder (clock rates assumed equal).
  std::chrono::steady_clock::time_point valid_until;
};

class EtcdLease {
 public:
  // `endpoints` as in the config ("http://127.0.0.1:2379"); InvalidArgument if one is malformed.
  static Result<EtcdLease> create(
      const std::vector<std::string>& endpoints,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

  // Grants a lease of `ttl_s` seconds and creates `key` = `holder` attached to it, only if the key
  // does not exist. Aborted ("... is held by 'b'") when someone holds it; the granted lease is
  // then revoked again.
  Result<Lease> acquire(const std::string& key, const std::string& holder, int64_t ttl_s);
  // Renews the lease; updates ttl_s and valid_until. Aborted when etcd no longer has the lease
  // (it expired: the key is gone and another peer may hold it now).
  Status keepalive(Lease* lease);
  // The current holder's name, or nullopt when nobody holds `key`.
  Result<std::optional<std::string>> holder(const std::string& key);
  // Revokes the lease, which deletes the key at once so the other side can acquire without
  // waiting for the TTL. A lease that already expired is released too (Ok).
  Status release(Lease* lease);

 private:
  EtcdLease(std::vector<HttpEndpoint> endpoints, std::chrono::milliseconds timeout)
      : endpoints_(std::move(endpoints)), timeout_(timeout) {}
  struct Reply {
    int status;
    std::string body;
  };
  // POSTs to the first endpoint that answers (and remembers it); IoError lists each failure.
  Result<Reply> call(const std::string& path, const std::string& json);

  std::vector<HttpEndpoint> endpoints_;
  size_t current_ = 0;  // endpoint that answered last
  std::chrono::milliseconds timeout_;
};

}  // namespace relive::ha
