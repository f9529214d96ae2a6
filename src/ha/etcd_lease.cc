#include "ha/etcd_lease.h"

#include <nlohmann/json.hpp>

namespace relive::ha {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string base64(std::string_view in) {
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

Result<std::string> unbase64(std::string_view in) {
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

// The gateway encodes int64 as JSON strings and omits zero values.
int64_t i64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::stoll(it->get<std::string>());
  if (it->is_number_integer()) return it->get<int64_t>();
  return 0;
}

Result<json> parse_json(const std::string& body, const std::string& what) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::IoError(what + ": etcd answered non-JSON: " + body.substr(0, 200));
  return j;
}

// An etcd error answer: {"error": "...", "code": N}.
std::string error_text(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string())
    return j["error"].get<std::string>();
  return body.substr(0, 200);
}

}  // namespace

Result<EtcdLease> EtcdLease::create(const std::vector<std::string>& endpoints,
                                    std::chrono::milliseconds timeout) {
  if (endpoints.empty()) return Status::InvalidArgument("etcd: no endpoints");
  std::vector<HttpEndpoint> eps;
  for (const std::string& e : endpoints) {
    Result<HttpEndpoint> ep = parse_http_endpoint(e);
    if (!ep.ok()) return ep.status().with_context("etcd endpoint");
    eps.push_back(*ep);
  }
  return EtcdLease(std::move(eps), timeout);
}

Result<EtcdLease::Reply> EtcdLease::call(const std::string& path, const std::string& body) {
  std::string failures;
  for (size_t n = 0; n < endpoints_.size(); ++n) {
    const HttpEndpoint& ep = endpoints_[(current_ + n) % endpoints_.size()];
    Result<HttpResponse> r = http_post(ep, path, body, timeout_);
    if (r.ok()) {
      current_ = (current_ + n) % endpoints_.size();
      return Reply{r->status, std::move(r->body)};
    }
    failures += (failures.empty() ? "" : "; ") + ep.url() + ": " + r.status().message();
  }
  return Status::IoError("etcd unreachable (" + path + "): " + failures);
}

Result<Lease> EtcdLease::acquire(const std::string& key, const std::string& holder, int64_t ttl_s) {
  if (key.empty() || holder.empty())
    return Status::InvalidArgument("etcd acquire: empty key or holder");
  Lease lease{key, holder, 0, 0, {}};
  Clock::time_point sent = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(Reply g,
                          call("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}}.dump()));
  if (g.status != 200) return Status::IoError("etcd lease grant: " + error_text(g.body));
  RELIVE_ASSIGN_OR_RETURN(json gj, parse_json(g.body, "etcd lease grant"));
  lease.id = i64(gj, "ID");
  lease.ttl_s = i64(gj, "TTL");
  if (lease.id == 0 || lease.ttl_s <= 0)
    return Status::IoError("etcd lease grant: no lease in " + g.body);
  lease.valid_until = sent + std::chrono::seconds(lease.ttl_s);

  std::string k = base64(key);
  json txn = {
      {"compare", json::array({{{"key", k}, {"target", "CREATE"}, {"create_revision", "0"}}})},
      {"success",
       json::array(
           {{{"request_put",
              {{"key", k}, {"value", base64(holder)}, {"lease", std::to_string(lease.id)}}}}})},
      {"failure", json::array({{{"request_range", {{"key", k}}}}})}};
  Result<Reply> t = call("/v3/kv/txn", txn.dump());
  Status failed;
  if (!t.ok()) {
    failed = t.status();
  } else if (t->status != 200) {
    failed = Status::IoError("etcd txn: " + error_text(t->body));
  } else {
    Result<json> tj = parse_json(t->body, "etcd txn");
    if (!tj.ok()) {
      failed = tj.status();
    } else if (tj->value("succeeded", false)) {
      return lease;
    } else {
      std::string current = "?";
      const json& kvs = (*tj)["responses"][0]["response_range"]["kvs"];
      if (kvs.is_array() && !kvs.empty()) {
        if (i64(kvs[0], "lease") == lease.id) return lease;  // our own earlier attempt landed
        Result<std::string> v = unbase64(kvs[0].value("value", ""));
        if (v.ok()) current = *v;
      }
      failed = Status::Aborted("etcd key " + key + " is held by '" + current + "'");
    }
  }
  (void)release(&lease);  // best effort: do not leave a granted lease behind
  return failed;
}

Status EtcdLease::keepalive(Lease* lease) {
  Clock::time_point sent = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(
      Reply r, call("/v3/lease/keepalive", json{{"ID", std::to_string(lease->id)}}.dump()));
  if (r.status != 200) return Status::IoError("etcd keepalive: " + error_text(r.body));
  // The streaming endpoint answers one line per request: {"result": {...}} or {"error": {...}}.
  std::string line = r.body.substr(0, r.body.find('\n'));
  RELIVE_ASSIGN_OR_RETURN(json j, parse_json(line, "etcd keepalive"));
  if (!j.contains("result")) return Status::IoError("etcd keepalive: " + line.substr(0, 200));
  int64_t ttl = i64(j["result"], "TTL");
  if (ttl <= 0) {
    return Status::Aborted("etcd lease " + std::to_string(lease->id) + " for " + lease->key +
                           " expired");
  }
  lease->ttl_s = ttl;
  lease->valid_until = sent + std::chrono::seconds(ttl);
  return Status::Ok();
}

Result<std::optional<std::string>> EtcdLease::holder(const std::string& key) {
  RELIVE_ASSIGN_OR_RETURN(Reply r, call("/v3/kv/range", json{{"key", base64(key)}}.dump()));
  if (r.status != 200) return Status::IoError("etcd range: " + error_text(r.body));
  RELIVE_ASSIGN_OR_RETURN(json j, parse_json(r.body, "etcd range"));
  auto kvs = j.find("kvs");
  if (kvs == j.end() || !kvs->is_array() || kvs->empty()) return std::optional<std::string>();
  RELIVE_ASSIGN_OR_RETURN(std::string v, unbase64((*kvs)[0].value("value", "")));
  return std::optional<std::string>(std::move(v));
}

Status EtcdLease::release(Lease* lease) {
  RELIVE_ASSIGN_OR_RETURN(Reply r,
                          call("/v3/lease/revoke", json{{"ID", std::to_string(lease->id)}}.dump()));
  lease->valid_until = Clock::time_point();
  if (r.status == 200) return Status::Ok();
  std::string err = error_text(r.body);
  if (err.find("lease not found") != std::string::npos) return Status::Ok();  // expired already
  return Status::IoError("etcd lease revoke: " + err);
}

}  // namespace relive::ha
