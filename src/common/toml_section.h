// TomlSection: one table of a TOML config being read (the HA pair's config, relived.toml). Every
// lookup is by key; errors name the full dotted key and its line ("etcd.lease_ttl_s (line 4):
// must be between 1 and 3600, got 0"); finish() rejects keys nobody asked for, so that a typo
// cannot silently fall back to a default. parse_toml() turns toml++'s parse error into a Status.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "relive/result.h"

namespace relive {

// "a string", "an integer", ...: for "must be X, got Y" messages.
const char* toml_type_name(const toml::node& n);

// Parses TOML text; a syntax error is InvalidArgument "source:line:column: what".
Result<toml::table> parse_toml(std::string_view text, std::string_view source);

class TomlSection {
 public:
  // `t` must outlive this section. `prefix` is prepended to key names in errors ("etcd.").
  TomlSection(const toml::table& t, std::string prefix) : table_(&t), prefix_(std::move(prefix)) {}

  std::string key_name(std::string_view key) const { return prefix_ + std::string(key); }
  // InvalidArgument "<prefix><key> (line N): <what>".
  Status error(std::string_view key, const std::string& what) const;
  // Marks `key` as read. Nullptr when absent (then `required` makes it an error in *status).
  const toml::node* find(std::string_view key, bool required, Status* status);
  // True when `key` is present (and marks it as read).
  bool has(std::string_view key);

  // Without a default the key is required.
  Result<uint64_t> integer(std::string_view key, std::optional<uint64_t> dflt, uint64_t lo,
                           uint64_t hi);
  // A non-empty string unless `allow_empty`.
  Result<std::string> string(std::string_view key, std::optional<std::string> dflt = {},
                             bool allow_empty = false);
  Result<bool> boolean(std::string_view key, std::optional<bool> dflt);
  // A non-empty array of strings; elements may be empty strings only when `allow_empty`.
  Result<std::vector<std::string>> strings(std::string_view key, bool allow_empty = false);
  // A required sub-table.
  Result<TomlSection> table(std::string_view key);
  // Every key of this table was read, or the first one that was not is an "unknown key" error.
  Status finish() const;

  const toml::table& raw() const { return *table_; }

 private:
  const toml::table* table_;
  std::string prefix_;
  std::set<std::string> seen_;
};

}  // namespace relive
