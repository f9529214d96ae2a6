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
// A faster hand-over than etcd's expiry (its TTL is whole seconds, and it sweeps expired leases
// only every 500 ms): with a `fence` interval, the holder also rewrites the key every fifth of it
// (renew_key: a transaction that only writes while the key is still on the holder's lease, so
// each renewal bumps the key's mod_revision), and counts itself valid only until `fence` after
// the *sending* of its last renewal that landed. Another peer that saw the key at one
// mod_revision (observe) and still sees it there `fence` later (by its own clock, plus a margin)
// knows the holder's validity ended, whatever the holder's clock says (rates assumed equal): the
// renewal that made that revision was sent before it was seen. take_over() then moves the key to
// its own lease in one transaction conditioned on that mod_revision, so a renewal landing
// meanwhile makes it fail, and after it the holder's renewals fail (the key is on another lease).
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
  // How long the key stays the holder's after a renewal was sent (see above); 0: only the TTL.
  std::chrono::milliseconds fence{0};
  // Local, conservative end of the lease: the earlier of (the sending of the last granting or
  // renewing request + the TTL etcd answered) and (the sending of the last key renewal +
  // fence). etcd's own expiry is never earlier, nor a take_over() by a peer, so a holder that
  // stops acting at valid_until can never overlap with a new holder (clock rates assumed equal).
  std::chrono::steady_clock::time_point valid_until;
  std::chrono::steady_clock::time_point lease_until, key_until;  // the two ends
};

// The key as another peer sees it (observe).
struct KeyState {
  std::optional<std::string> holder;  // nullopt: nobody holds it
  int64_t mod_revision = 0;
};

class EtcdLease {
 public:
  // `endpoints` as in the config ("http://127.0.0.1:2379"); InvalidArgument if one is malformed.
  static Result<EtcdLease> create(
      const std::vector<std::string>& endpoints,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

  // Grants a lease of `ttl_s` seconds and creates `key` = `holder` attached to it, only if the key
  // does not exist. Aborted ("... is held by 'b'") when someone holds it; the granted lease is
  // then revoked again. `fence` as in Lease (0: the TTL alone bounds the holder).
  Result<Lease> acquire(const std::string& key, const std::string& holder, int64_t ttl_s,
                        std::chrono::milliseconds fence = std::chrono::milliseconds(0));
  // Renews the lease; updates ttl_s and valid_until. Aborted when etcd no longer has the lease
  // (it expired: the key is gone and another peer may hold it now).
  Status keepalive(Lease* lease);
  // Rewrites the key while it is still on `lease`; updates key_until and valid_until. Aborted
  // when it is not (it expired, or a peer took it over).
  Status renew_key(Lease* lease);
  // The key's holder and mod_revision (a linearizable read).
  Result<KeyState> observe(const std::string& key);
  // Like acquire, but takes a held key, only if its mod_revision is still `seen_revision`: the
  // caller must have seen it there at least `fence` (plus a margin) ago by its own clock.
  // Aborted when the key moved on (renewed, released, taken by someone else).
  Result<Lease> take_over(const std::string& key, const std::string& holder, int64_t ttl_s,
                          std::chrono::milliseconds fence, int64_t seen_revision);
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
  // Grants a lease and puts `key` on it when the key's `target` ("CREATE", "MOD") compares equal
  // to `value` (the gateway's field for it: `field`).
  Result<Lease> grant_and_put(const std::string& key, const std::string& holder, int64_t ttl_s,
                              std::chrono::milliseconds fence, const char* target,
                              const char* field, int64_t value);

  std::vector<HttpEndpoint> endpoints_;
  size_t current_ = 0;  // endpoint that answered last
  std::chrono::milliseconds timeout_;
};

}  // namespace relive::ha
