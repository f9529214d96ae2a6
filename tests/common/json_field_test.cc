#include "common/json_field.h"

#include <gtest/gtest.h>

namespace relive {
namespace {

using nlohmann::json;

TEST(JsonField, ReadsTypedFields) {
  auto j = parse_json_object(R"({"a": 7, "b": -3, "c": 1.5, "d": "x", "e": true})", "msg");
  ASSERT_TRUE(j.ok()) << j.status().to_string();
  EXPECT_EQ(*json_field<uint64_t>(*j, "a", "msg"), 7u);
  EXPECT_EQ(*json_field<int>(*j, "b", "msg"), -3);
  EXPECT_EQ(*json_field<double>(*j, "c", "msg"), 1.5);
  EXPECT_EQ(*json_field<double>(*j, "a", "msg"), 7.0);  // an integer is a number
  EXPECT_EQ(*json_field<std::string>(*j, "d", "msg"), "x");
  EXPECT_TRUE(*json_field<bool>(*j, "e", "msg"));
  EXPECT_EQ(*json_field_or<int>(*j, "missing", 42, "msg"), 42);
}

TEST(JsonField, RefusesTextThatIsNotAnObject) {
  for (const char* t :
       {"", "{", "{\"a\":", "nonsense", "[1,2]", "17", "\"s\"", "null", "{\"a\": 1} trailing"}) {
    auto j = parse_json_object(t, "the peer's reply");
    EXPECT_EQ(j.status().code(), Status::Code::kCorruption) << t;
    if (!j.ok()) {
      EXPECT_NE(j.status().message().find("the peer's reply"), std::string::npos);
    }
  }
}

TEST(JsonField, RefusesWrongTypes) {
  json j = json::parse(R"({"n": "12", "s": 12, "b": 1, "o": {}, "f": 1.5, "z": null})");
  EXPECT_EQ(json_field<int>(j, "n", "m").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(json_field<std::string>(j, "s", "m").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(json_field<bool>(j, "b", "m").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(json_field<double>(j, "o", "m").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(json_field<uint64_t>(j, "f", "m").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(json_field<int>(j, "z", "m").status().code(), Status::Code::kCorruption);
  // A default covers a missing field, never a wrong one.
  EXPECT_EQ(json_field_or<int>(j, "n", 0, "m").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(json_field_or<int>(j, "z", 5, "m").value(), 5);
  Status s = json_field<int>(j, "n", "the restore reply").status();
  EXPECT_EQ(s.message(), "the restore reply: field 'n' must be an integer, got string");
}

TEST(JsonField, RefusesMissingFieldsAndNonObjects) {
  json j = json::parse(R"({"a": 1})");
  EXPECT_EQ(json_field<int>(j, "b", "m").status().message(), "m: field 'b' is missing");
  EXPECT_FALSE(json_field<int>(json::array(), "a", "m").ok());
  EXPECT_FALSE(json_field_or<int>(json(3), "a", 0, "m").ok());
}

TEST(JsonField, RefusesNumbersOutOfRange) {
  json j = json::parse(
      R"({"big": 18446744073709551615, "huge": 1e300, "over": 18446744073709551616,
          "neg": -1, "int_max_plus": 2147483648, "int_min_minus": -2147483649})");
  EXPECT_EQ(*json_field<uint64_t>(j, "big", "m"), UINT64_MAX);
  EXPECT_FALSE(json_field<int64_t>(j, "big", "m").ok());
  EXPECT_FALSE(json_field<uint64_t>(j, "huge", "m").ok());
  EXPECT_EQ(*json_field<double>(j, "huge", "m"), 1e300);
  // Beyond a double: not JSON we can hold.
  EXPECT_FALSE(parse_json_object(R"({"x": 1e400})", "m").ok());
  EXPECT_FALSE(json_field<uint64_t>(j, "over", "m").ok());
  EXPECT_FALSE(json_field<uint64_t>(j, "neg", "m").ok());
  EXPECT_FALSE(json_field<uint16_t>(j, "int_max_plus", "m").ok());
  EXPECT_FALSE(json_field<int>(j, "int_max_plus", "m").ok());
  EXPECT_FALSE(json_field<int>(j, "int_min_minus", "m").ok());
  EXPECT_EQ(*json_field<int64_t>(j, "neg", "m"), -1);
}

TEST(JsonField, ValueOrFallsBackOnAnythingUnexpected) {
  json j = json::parse(R"({"running": "yes", "status": 3, "icount": -1, "ok": true, "s": "x"})");
  EXPECT_FALSE(json_value_or(j, "running", false));
  EXPECT_EQ(json_value_or(j, "status", ""), "");
  EXPECT_EQ(json_value_or(j, "icount", uint64_t{7}), 7u);
  EXPECT_EQ(json_value_or(j, "missing", 5), 5);
  EXPECT_TRUE(json_value_or(j, "ok", false));
  EXPECT_EQ(json_value_or(j, "s", "?"), "x");
  EXPECT_EQ(json_value_or(json::array(), "s", "?"), "?");
  EXPECT_EQ(json_value_or(json(), "s", "?"), "?");
}

TEST(JsonField, ReadsArrayElements) {
  json a = json::parse(R"([4096, "x"])");
  EXPECT_EQ(*json_element<uint64_t>(a, 0, "m"), 4096u);
  EXPECT_FALSE(json_element<uint64_t>(a, 1, "m").ok());
  EXPECT_FALSE(json_element<uint64_t>(a, 2, "m").ok());
  EXPECT_FALSE(json_element<uint64_t>(json::object(), 0, "m").ok());
}

}  // namespace
}  // namespace relive
