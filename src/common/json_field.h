// Reading JSON that another host or process sent (a peer's reply, etcd's answer, QEMU's QMP):
// every read is checked, so malformed input (not JSON, not an object, a missing field, a
// string where a number belongs, a number too big for its type) is a Status::Corruption that
// names the message and the field, never an exception from nlohmann::json.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>

#include "relive/result.h"

namespace relive {

// Parses `text` as a JSON object; `what` names it in errors ("the destination's restore reply").
Result<nlohmann::json> parse_json_object(std::string_view text, std::string_view what);

namespace json_detail {

std::string type_name(const nlohmann::json& v);
Status bad_field(std::string_view what, std::string_view key, std::string_view why);

// `v` as T, or why not.
template <typename T>
Result<T> convert(const nlohmann::json& v, std::string_view what, std::string_view key) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return bad_field(what, key, "must be true or false, got " + type_name(v));
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    using L = std::numeric_limits<T>;
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(L::max())) return bad_field(what, key, "is out of range");
      return static_cast<T>(u);
    }
    if (v.is_number_integer()) {
      int64_t i = v.get<int64_t>();
      if (i < 0 ? (!L::is_signed || i < static_cast<int64_t>(L::min()))
                : static_cast<uint64_t>(i) > static_cast<uint64_t>(L::max()))
        return bad_field(what, key, "is out of range");
      return static_cast<T>(i);
    }
    return bad_field(what, key, "must be an integer, got " + type_name(v));
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return bad_field(what, key, "must be a number, got " + type_name(v));
    double d = v.get<double>();
    if (!std::isfinite(d)) return bad_field(what, key, "is not finite");
    return static_cast<T>(d);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return bad_field(what, key, "must be a string, got " + type_name(v));
    return v.get<std::string>();
  } else {
    static_assert(std::is_same_v<T, nlohmann::json>, "json_field: unsupported type");
    return v;
  }
}

}  // namespace json_detail

// The field `key` of object `j` as T (bool, an integer type, a floating type, std::string or
// nlohmann::json). Corruption when `j` is not an object, the field is missing, of another type,
// or out of T's range (integers) or not finite (floating).
template <typename T>
Result<T> json_field(const nlohmann::json& j, std::string_view key, std::string_view what) {
  if (!j.is_object()) return json_detail::bad_field(what, key, "the message is not an object");
  auto it = j.find(key);
  if (it == j.end()) return json_detail::bad_field(what, key, "is missing");
  return json_detail::convert<T>(*it, what, key);
}

// As json_field, but `fallback` when the field is missing or null; still Corruption when it is
// there with the wrong type.
template <typename T>
Result<T> json_field_or(const nlohmann::json& j, std::string_view key, T fallback,
                        std::string_view what) {
  if (!j.is_object()) return json_detail::bad_field(what, key, "the message is not an object");
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return json_detail::convert<T>(*it, what, key);
}

// `key` of `j` as T, or `fallback` when `j` is not an object or the field is missing, null, of
// another type or out of range: for what only informs (a report's figures, a status line), where
// a bad value must not stop anything. Never throws.
template <typename T>
T json_value_or(const nlohmann::json& j, std::string_view key, T fallback) {
  Result<T> v = json_field_or(j, key, fallback, "");
  return v.ok() ? std::move(v).value() : fallback;
}
inline std::string json_value_or(const nlohmann::json& j, std::string_view key,
                                 const char* fallback) {
  return json_value_or(j, key, std::string(fallback));
}

// An element of an array, checked the same way (`index` names it in errors).
template <typename T>
Result<T> json_element(const nlohmann::json& array, size_t index, std::string_view what) {
  std::string key = "[" + std::to_string(index) + "]";
  if (!array.is_array()) return json_detail::bad_field(what, key, "the value is not an array");
  if (index >= array.size()) return json_detail::bad_field(what, key, "is missing");
  return json_detail::convert<T>(array[index], what, key);
}

}  // namespace relive
