#include "ha/etcd_replies.h"

#include <gtest/gtest.h>

namespace relive::ha {
namespace {

constexpr Status::Code kIo = Status::Code::kIoError;

TEST(EtcdReplies, Base64RoundTrips) {
  for (const std::string& s : std::vector<std::string>{
           "", "a", "ab", "abc", "/relive/ha/redis/primary", std::string("\0\xff", 2)})
    EXPECT_EQ(*etcd_unbase64(etcd_base64(s)), s);
  EXPECT_FALSE(etcd_unbase64("ab!c").ok());
}

TEST(EtcdReplies, Int64AsStringOrNumber) {
  auto j = nlohmann::json::parse(R"({"a": "7587862142384929", "b": 5, "c": "-3"})");
  EXPECT_EQ(*etcd_int64(j, "a"), 7587862142384929);
  EXPECT_EQ(*etcd_int64(j, "b"), 5);
  EXPECT_EQ(*etcd_int64(j, "c"), -3);
  EXPECT_EQ(*etcd_int64(j, "absent"), 0);  // the gateway omits zeros
}

TEST(EtcdReplies, Int64MalformedIsIoErrorNotAnException) {
  for (const char* t :
       {R"({"a": "12x"})", R"({"a": "x"})", R"({"a": ""})", R"({"a": "99999999999999999999"})",
        R"({"a": 1.5})", R"({"a": true})", R"({"a": 18446744073709551615})", R"({"a": {}})"}) {
    EXPECT_EQ(etcd_int64(nlohmann::json::parse(t), "a").status().code(), kIo) << t;
  }
  EXPECT_EQ(etcd_int64(nlohmann::json::array(), "a").status().code(), kIo);
}

TEST(EtcdReplies, Grant) {
  auto g = parse_etcd_grant(R"({"header": {}, "ID": "7587862142384929", "TTL": "5"})");
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(g->id, 7587862142384929);
  EXPECT_EQ(g->ttl_s, 5);
  for (const char* t : {"", "<html>", R"({"ID": "1"})", R"({"ID": "x", "TTL": "5"})",
                        R"({"ID": "1", "TTL": "-5"})", R"({"ID": [], "TTL": "5"})", "[1]"}) {
    EXPECT_EQ(parse_etcd_grant(t).status().code(), kIo) << t;
  }
}

TEST(EtcdReplies, Txn) {
  EXPECT_TRUE(parse_etcd_txn(R"({"succeeded": true})")->succeeded);
  auto held = parse_etcd_txn(
      R"({"responses": [{"response_range": {"kvs": [{"value": "YmFja3Vw", "lease": "42"}]}}]})");
  ASSERT_TRUE(held.ok()) << held.status().to_string();
  EXPECT_FALSE(held->succeeded);
  EXPECT_EQ(held->holder, "backup");
  EXPECT_EQ(held->holder_lease, 42);
  auto gone = parse_etcd_txn(R"({"responses": [{"response_range": {}}]})");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->holder.has_value());
}

TEST(EtcdReplies, TxnMalformedIsIoErrorNotAnException) {
  for (const char* t : {
           "nope",
           R"({"succeeded": "yes"})",
           R"({"responses": [{"response_range": {"kvs": {}}}]})",
           R"({"responses": [{"response_range": {"kvs": [{"value": 5}]}}]})",
           R"({"responses": [{"response_range": {"kvs": [{"lease": "x"}]}}]})",
       }) {
    EXPECT_EQ(parse_etcd_txn(t).status().code(), kIo) << t;
  }
  // A shape with no holder in it (an object where a list belongs): refused, nobody named.
  auto odd = parse_etcd_txn(R"({"responses": {"0": 1}})");
  ASSERT_TRUE(odd.ok());
  EXPECT_FALSE(odd->succeeded);
  EXPECT_FALSE(odd->holder.has_value());
}

TEST(EtcdReplies, Keepalive) {
  EXPECT_EQ(*parse_etcd_keepalive("{\"result\": {\"ID\": \"1\", \"TTL\": \"5\"}}\n{}"), 5);
  EXPECT_EQ(*parse_etcd_keepalive(R"({"result": {"ID": "1"}})"), 0);  // expired
  for (const char* t : {"", "{", R"({"error": {"code": 2}})", R"({"result": {"TTL": "5s"}})",
                        R"({"result": {"TTL": "92233720368547758070"}})", R"({"result": 5})",
                        R"({"result": {"TTL": [5]}})"}) {
    EXPECT_EQ(parse_etcd_keepalive(t).status().code(), kIo) << t;
  }
}

TEST(EtcdReplies, Range) {
  EXPECT_EQ(parse_etcd_range(R"({"kvs": [{"value": "cHJpbWFyeQ=="}]})")->value(), "primary");
  EXPECT_FALSE(parse_etcd_range(R"({"count": "0"})")->has_value());
  EXPECT_EQ(parse_etcd_range(R"({"kvs": [{"value": 12}]})").status().code(), kIo);
  EXPECT_FALSE(parse_etcd_range(R"({"kvs": [{"value": "!!"}]})").ok());
  EXPECT_EQ(parse_etcd_range("truncated {").status().code(), kIo);
}

TEST(EtcdReplies, KeyWithItsRevisionAndLease) {
  Result<EtcdKey> k = parse_etcd_key(
      R"({"kvs": [{"value": "YQ==", "mod_revision": "42", "lease": "7587"}], "count": "1"})");
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  EXPECT_EQ(k->value.value_or(""), "a");
  EXPECT_EQ(k->mod_revision, 42);
  EXPECT_EQ(k->lease, 7587);
  Result<EtcdKey> none = parse_etcd_key(R"({"header": {}})");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->value.has_value());
  EXPECT_EQ(parse_etcd_key(R"({"kvs": [{"value": "YQ=="}]})")->mod_revision, 0);  // omitted zero
  EXPECT_EQ(parse_etcd_key(R"({"kvs": [{"value": "YQ==", "mod_revision": "x"}]})").status().code(),
            kIo);
  EXPECT_EQ(parse_etcd_key(R"({"kvs": ["YQ=="]})").status().code(), kIo);
}

}  // namespace
}  // namespace relive::ha
