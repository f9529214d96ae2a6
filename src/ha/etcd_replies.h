// etcd's v3 JSON gateway answers, read into structs (EtcdLease's requests go the other way).
// The answers come from another host: anything malformed (not JSON, a field of the wrong type,
// an int64 that is not a number or does not fit) is Status::IoError, "etcd could not be asked"
// in EtcdLease's terms, never an exception (the lease keeper's thread reads these).
//
// The gateway encodes int64 as JSON strings, omits zero values, and base64-encodes keys and
// values.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "relive/result.h"

namespace relive::ha {

std::string etcd_base64(std::string_view in);
Result<std::string> etcd_unbase64(std::string_view in);

// `key` of object `j` as the gateway writes an int64: a decimal string or a number; 0 when
// absent.
Result<int64_t> etcd_int64(const nlohmann::json& j, std::string_view key);

// An error answer's text: {"error": "..."}, else the start of the body.
std::string etcd_error_text(const std::string& body);

// /v3/lease/grant.
struct EtcdGrant {
  int64_t id = 0;
  int64_t ttl_s = 0;
};
Result<EtcdGrant> parse_etcd_grant(const std::string& body);

// /v3/kv/txn "create the key unless it exists, else read it".
struct EtcdTxn {
  bool succeeded = false;
  // When it did not succeed: the key's current lease and value, if it had any.
  std::optional<int64_t> holder_lease;
  std::optional<std::string> holder;
};
Result<EtcdTxn> parse_etcd_txn(const std::string& body);

// /v3/lease/keepalive: the TTL etcd renewed the lease for (0 or less: expired).
Result<int64_t> parse_etcd_keepalive(const std::string& body);

// /v3/kv/range: the first value, if the key exists.
Result<std::optional<std::string>> parse_etcd_range(const std::string& body);

// /v3/kv/range, the first key in full.
struct EtcdKey {
  std::optional<std::string> value;  // nullopt: no such key
  int64_t mod_revision = 0;
  int64_t lease = 0;
};
Result<EtcdKey> parse_etcd_key(const std::string& body);

}  // namespace relive::ha
