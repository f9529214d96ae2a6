#include "ha/etcd_replies.h"

#include <charconv>

#include "common/json_field.h"

namespace relive::ha {
namespace {

using nlohmann::json;

// Every failure here is etcd's answer not understood: IoError (see the header).
Status as_io_error(const Status& s) { return Status::IoError(s.message()); }

Result<json> parse_body(std::string_view body, std::string_view what) {
  Result<json> j = parse_json_object(body, what);
  if (!j.ok())
    return Status::IoError(j.status().message() + ": " + std::string(body.substr(0, 200)));
  return j;
}

}  // namespace

std::string etcd_base64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

Result<std::string> etcd_unbase64(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=')
      break;
    else
      return Status::Corruption("etcd: bad base64 value");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

Result<int64_t> etcd_int64(const json& j, std::string_view key) {
  if (!j.is_object()) return Status::IoError("etcd: an object was expected, got " + j.dump());
  auto it = j.find(key);
  if (it == j.end()) return int64_t{0};
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size())
      return Status::IoError("etcd: " + std::string(key) + " is not an int64: '" + s.substr(0, 40) +
                             "'");
    return v;
  }
  Result<int64_t> v = json_field<int64_t>(j, key, "etcd");
  if (!v.ok()) return as_io_error(v.status());
  return v;
}

std::string etcd_error_text(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string())
    return j["error"].get<std::string>();
  return body.substr(0, 200);
}

Result<EtcdGrant> parse_etcd_grant(const std::string& body) {
  RELIVE_ASSIGN_OR_RETURN(json j, parse_body(body, "etcd lease grant"));
  EtcdGrant g;
  RELIVE_ASSIGN_OR_RETURN(g.id, etcd_int64(j, "ID"));
  RELIVE_ASSIGN_OR_RETURN(g.ttl_s, etcd_int64(j, "TTL"));
  if (g.id == 0 || g.ttl_s <= 0) return Status::IoError("etcd lease grant: no lease in " + body);
  return g;
}

Result<EtcdTxn> parse_etcd_txn(const std::string& body) {
  constexpr std::string_view kWhat = "etcd txn";
  RELIVE_ASSIGN_OR_RETURN(json j, parse_body(body, kWhat));
  EtcdTxn t;
  Result<bool> ok = json_field_or(j, "succeeded", false, kWhat);  // omitted when false
  if (!ok.ok()) return as_io_error(ok.status());
  t.succeeded = *ok;
  if (t.succeeded) return t;
  // {"responses": [{"response_range": {"kvs": [{"value": ..., "lease": ...}]}}]}
  const json* kvs = &j;
  for (const char* step : {"responses", "0", "response_range", "kvs"}) {
    if (kvs->is_array() && std::string_view(step) == "0") {
      if (kvs->empty()) return t;
      kvs = &(*kvs)[0];
    } else if (kvs->is_object() && kvs->contains(step)) {
      kvs = &(*kvs)[step];
    } else {
      return t;  // the key is gone again: no holder to name
    }
  }
  if (!kvs->is_array()) return Status::IoError("etcd txn: kvs is not a list");
  if (kvs->empty()) return t;
  const json& kv = (*kvs)[0];
  RELIVE_ASSIGN_OR_RETURN(t.holder_lease, etcd_int64(kv, "lease"));
  Result<std::string> v = json_field_or(kv, "value", std::string(), kWhat);
  if (!v.ok()) return as_io_error(v.status());
  Result<std::string> holder = etcd_unbase64(*v);
  if (holder.ok()) t.holder = *holder;
  return t;
}

Result<int64_t> parse_etcd_keepalive(const std::string& body) {
  // The streaming endpoint answers one line per request: {"result": {...}} or {"error": {...}}.
  std::string line = body.substr(0, body.find('\n'));
  RELIVE_ASSIGN_OR_RETURN(json j, parse_body(line, "etcd keepalive"));
  auto result = j.find("result");
  if (result == j.end()) return Status::IoError("etcd keepalive: " + line.substr(0, 200));
  return etcd_int64(*result, "TTL");
}

Result<EtcdKey> parse_etcd_key(const std::string& body) {
  constexpr std::string_view kWhat = "etcd range";
  RELIVE_ASSIGN_OR_RETURN(json j, parse_body(body, kWhat));
  EtcdKey k;
  auto kvs = j.find("kvs");
  if (kvs == j.end() || !kvs->is_array() || kvs->empty()) return k;
  const json& kv = (*kvs)[0];
  if (!kv.is_object()) return Status::IoError("etcd range: a key is not an object");
  Result<std::string> v = json_field_or(kv, "value", std::string(), kWhat);
  if (!v.ok()) return as_io_error(v.status());
  RELIVE_ASSIGN_OR_RETURN(std::string value, etcd_unbase64(*v));
  k.value = std::move(value);
  RELIVE_ASSIGN_OR_RETURN(k.mod_revision, etcd_int64(kv, "mod_revision"));
  RELIVE_ASSIGN_OR_RETURN(k.lease, etcd_int64(kv, "lease"));
  return k;
}

Result<std::optional<std::string>> parse_etcd_range(const std::string& body) {
  RELIVE_ASSIGN_OR_RETURN(EtcdKey k, parse_etcd_key(body));
  return std::move(k.value);
}

}  // namespace relive::ha
