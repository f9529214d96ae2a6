#include "ha/etcd_lease.h"

#include <nlohmann/json.hpp>

#include "ha/etcd_replies.h"

namespace relive::ha {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string base64(std::string_view in) { return etcd_base64(in); }
std::string error_text(const std::string& body) { return etcd_error_text(body); }

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
  RELIVE_ASSIGN_OR_RETURN(EtcdGrant grant, parse_etcd_grant(g.body));
  lease.id = grant.id;
  lease.ttl_s = grant.ttl_s;
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
    Result<EtcdTxn> tx = parse_etcd_txn(t->body);
    if (!tx.ok()) {
      failed = tx.status();
    } else if (tx->succeeded || tx->holder_lease == lease.id) {
      return lease;  // created, or our own earlier attempt landed
    } else {
      failed =
          Status::Aborted("etcd key " + key + " is held by '" + tx->holder.value_or("?") + "'");
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
  RELIVE_ASSIGN_OR_RETURN(int64_t ttl, parse_etcd_keepalive(r.body));
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
  return parse_etcd_range(r.body);
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
