// Result<T>: a value or the Status that explains why there is none (GCC 12 has no std::expected).
#pragma once

#include <optional>
#include <utility>

#include "relive/status.h"

namespace relive {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace relive

#define RELIVE_CONCAT_INNER_(a, b) a##b
#define RELIVE_CONCAT_(a, b) RELIVE_CONCAT_INNER_(a, b)
// RELIVE_ASSIGN_OR_RETURN(auto x, make_x()); returns the Status from the enclosing function when
// make_x() failed.
#define RELIVE_ASSIGN_OR_RETURN(decl, expr) \
  RELIVE_ASSIGN_OR_RETURN_IMPL_(RELIVE_CONCAT_(relive_result_, __COUNTER__), decl, expr)
#define RELIVE_ASSIGN_OR_RETURN_IMPL_(tmp, decl, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  decl = std::move(tmp).value()
