#include "common/toml_section.h"

namespace relive {

const char* toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return "a date or time";
  }
}

Result<toml::table> parse_toml(std::string_view text, std::string_view source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(
        std::string(source) + ":" + std::to_string(e.source().begin.line) + ":" +
        std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
}

Status TomlSection::error(std::string_view key, const std::string& what) const {
  std::string where = key_name(key);
  if (const toml::node* n = table_->get(key)) {
    where += " (line " + std::to_string(n->source().begin.line) + ")";
  }
  return Status::InvalidArgument(where + ": " + what);
}

const toml::node* TomlSection::find(std::string_view key, bool required, Status* status) {
  seen_.insert(std::string(key));
  const toml::node* n = table_->get(key);
  if (!n && required) *status = Status::InvalidArgument(key_name(key) + ": missing");
  return n;
}

bool TomlSection::has(std::string_view key) {
  Status ignored;
  return find(key, false, &ignored) != nullptr;
}

Result<uint64_t> TomlSection::integer(std::string_view key, std::optional<uint64_t> dflt,
                                      uint64_t lo, uint64_t hi) {
  Status st;
  const toml::node* n = find(key, !dflt.has_value(), &st);
  if (!st.ok()) return st;
  if (!n) return *dflt;
  if (!n->is_integer())
    return error(key, std::string("must be an integer, got ") + toml_type_name(*n));
  int64_t v = n->as_integer()->get();
  if (v < 0 || static_cast<uint64_t>(v) < lo || static_cast<uint64_t>(v) > hi) {
    return error(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                          ", got " + std::to_string(v));
  }
  return static_cast<uint64_t>(v);
}

Result<std::string> TomlSection::string(std::string_view key, std::optional<std::string> dflt,
                                        bool allow_empty) {
  Status st;
  const toml::node* n = find(key, !dflt.has_value(), &st);
  if (!st.ok()) return st;
  if (!n) return *dflt;
  if (!n->is_string())
    return error(key, std::string("must be a string, got ") + toml_type_name(*n));
  std::string s = n->as_string()->get();
  if (s.empty() && !allow_empty) return error(key, "must not be empty");
  return s;
}

Result<bool> TomlSection::boolean(std::string_view key, std::optional<bool> dflt) {
  Status st;
  const toml::node* n = find(key, !dflt.has_value(), &st);
  if (!st.ok()) return st;
  if (!n) return *dflt;
  if (!n->is_boolean())
    return error(key, std::string("must be a boolean, got ") + toml_type_name(*n));
  return n->as_boolean()->get();
}

Result<std::vector<std::string>> TomlSection::strings(std::string_view key, bool allow_empty) {
  Status st;
  const toml::node* n = find(key, true, &st);
  if (!st.ok()) return st;
  const toml::array* a = n->as_array();
  if (!a) return error(key, std::string("must be an array of strings, got ") + toml_type_name(*n));
  if (a->empty()) return error(key, "must not be empty");
  std::vector<std::string> out;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& e = *a->get(i);
    if (!e.is_string() || (!allow_empty && e.as_string()->get().empty())) {
      return error(key, "element " + std::to_string(i) + " must be a " +
                            (allow_empty ? "string" : "non-empty string"));
    }
    out.push_back(e.as_string()->get());
  }
  return out;
}

Result<TomlSection> TomlSection::table(std::string_view key) {
  Status st;
  const toml::node* n = find(key, true, &st);
  if (!st.ok()) return st;
  if (!n->is_table()) return error(key, std::string("must be a table, got ") + toml_type_name(*n));
  return TomlSection(*n->as_table(), key_name(key) + ".");
}

Status TomlSection::finish() const {
  for (const auto& [k, v] : *table_) {
    if (!seen_.count(std::string(k.str()))) {
      return Status::InvalidArgument(key_name(k.str()) + " (line " +
                                     std::to_string(v.source().begin.line) + "): unknown key");
    }
  }
  return Status::Ok();
}

}  // namespace relive
