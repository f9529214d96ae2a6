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

namespace {

// Both ends taken into account; a zero fence leaves the key's end unbounded.
void settle(Lease* lease) {
  if (lease->fence.count() == 0) lease->key_until = Clock::time_point::max();
  lease->valid_until = std::min(lease->lease_until, lease->key_until);
}

json compare_one(const std::string& k, const char* target, const char* field, int64_t value) {
  return {{"key", k}, {"target", target}, {field, std::to_string(value)}};
}

}  // namespace

Result<Lease> EtcdLease::acquire(const std::string& key, const std::string& holder, int64_t ttl_s,
                                 std::chrono::milliseconds fence) {
  return grant_and_put(key, holder, ttl_s, fence, "CREATE", "create_revision", 0);
}

Result<Lease> EtcdLease::take_over(const std::string& key, const std::string& holder, int64_t ttl_s,
                                   std::chrono::milliseconds fence, int64_t seen_revision) {
  if (seen_revision <= 0) return Status::InvalidArgument("etcd take_over: no revision seen");
  return grant_and_put(key, holder, ttl_s, fence, "MOD", "mod_revision", seen_revision);
}

Result<Lease> EtcdLease::grant_and_put(const std::string& key, const std::string& holder,
                                       int64_t ttl_s, std::chrono::milliseconds fence,
                                       const char* target, const char* field, int64_t value) {
  if (key.empty() || holder.empty())
    return Status::InvalidArgument("etcd acquire: empty key or holder");
  if (fence.count() < 0) return Status::InvalidArgument("etcd acquire: negative fence");
  Lease lease{key, holder, 0, 0, fence, {}, {}, {}};
  Clock::time_point sent = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(Reply g,
                          call("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}}.dump()));
  if (g.status != 200) return Status::IoError("etcd lease grant: " + error_text(g.body));
  RELIVE_ASSIGN_OR_RETURN(EtcdGrant grant, parse_etcd_grant(g.body));
  lease.id = grant.id;
  lease.ttl_s = grant.ttl_s;
  lease.lease_until = sent + std::chrono::seconds(lease.ttl_s);

  std::string k = base64(key);
  json txn = {
      {"compare", json::array({compare_one(k, target, field, value)})},
      {"success",
       json::array(
           {{{"request_put",
              {{"key", k}, {"value", base64(holder)}, {"lease", std::to_string(lease.id)}}}}})},
      {"failure", json::array({{{"request_range", {{"key", k}}}}})}};
  Clock::time_point put_sent = Clock::now();
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
      lease.key_until = put_sent + fence;  // created, or our own earlier attempt landed
      settle(&lease);
      return lease;
    } else if (tx->holder) {
      failed = Status::Aborted("etcd key " + key + " is held by '" + *tx->holder + "'");
    } else {
      failed = Status::Aborted("etcd key " + key + " moved on before it could be taken");
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
  lease->lease_until = sent + std::chrono::seconds(ttl);
  settle(lease);
  return Status::Ok();
}

Status EtcdLease::renew_key(Lease* lease) {
  std::string k = base64(lease->key);
  json txn = {{"compare", json::array({compare_one(k, "LEASE", "lease", lease->id)})},
              {"success", json::array({{{"request_put",
                                         {{"key", k},
                                          {"value", base64(lease->holder)},
                                          {"lease", std::to_string(lease->id)}}}}})},
              {"failure", json::array({{{"request_range", {{"key", k}}}}})}};
  Clock::time_point sent = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(Reply r, call("/v3/kv/txn", txn.dump()));
  if (r.status != 200) return Status::IoError("etcd txn: " + error_text(r.body));
  RELIVE_ASSIGN_OR_RETURN(EtcdTxn tx, parse_etcd_txn(r.body));
  if (!tx.succeeded) {
    return Status::Aborted("etcd key " + lease->key + " is no longer on lease " +
                           std::to_string(lease->id) + " (held by '" +
                           tx.holder.value_or("nobody") + "')");
  }
  lease->key_until = sent + lease->fence;
  settle(lease);
  return Status::Ok();
}

Result<KeyState> EtcdLease::observe(const std::string& key) {
  RELIVE_ASSIGN_OR_RETURN(Reply r, call("/v3/kv/range", json{{"key", base64(key)}}.dump()));
  if (r.status != 200) return Status::IoError("etcd range: " + error_text(r.body));
  RELIVE_ASSIGN_OR_RETURN(EtcdKey k, parse_etcd_key(r.body));
  // etcd's revisions start at 1: a key without one cannot be fenced on.
  if (k.value && k.mod_revision <= 0) return Status::IoError("etcd range: key without a revision");
  return KeyState{std::move(k.value), k.mod_revision};
}

Result<std::optional<std::string>> EtcdLease::holder(const std::string& key) {
  RELIVE_ASSIGN_OR_RETURN(Reply r, call("/v3/kv/range", json{{"key", base64(key)}}.dump()));
  if (r.status != 200) return Status::IoError("etcd range: " + error_text(r.body));
  return parse_etcd_range(r.body);
}

Status EtcdLease::release(Lease* lease) {
  RELIVE_ASSIGN_OR_RETURN(Reply r,
                          call("/v3/lease/revoke", json{{"ID", std::to_string(lease->id)}}.dump()));
  lease->valid_until = lease->lease_until = lease->key_until = Clock::time_point();
  if (r.status == 200) return Status::Ok();
  std::string err = error_text(r.body);
  if (err.find("lease not found") != std::string::npos) return Status::Ok();  // expired already
  return Status::IoError("etcd lease revoke: " + err);
}

}  // namespace relive::ha
