#include "common/json_field.h"

namespace relive {

Result<nlohmann::json> parse_json_object(std::string_view text, std::string_view what) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Corruption(std::string(what) + " is not JSON");
  if (!j.is_object()) return Status::Corruption(std::string(what) + " is not a JSON object");
  return j;
}

namespace json_detail {

std::string type_name(const nlohmann::json& v) { return v.type_name(); }

Status bad_field(std::string_view what, std::string_view key, std::string_view why) {
  return Status::Corruption(std::string(what) + ": field '" + std::string(key) + "' " +
                            std::string(why));
}

}  // namespace json_detail
}  // namespace relive
