#include "migrate/peer_replies.h"

#include <charconv>

#include "common/json_field.h"

namespace relive::migrate {

Result<CommandReply> parse_command_reply(std::string_view text) {
  constexpr std::string_view kWhat = "the destination's reply";
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json j, parse_json_object(text, kWhat));
  CommandReply r;
  RELIVE_ASSIGN_OR_RETURN(r.restore_ms, json_field_or(j, "restore_ms", 0.0, kWhat));
  RELIVE_ASSIGN_OR_RETURN(r.root_pid, json_field_or(j, "root_pid", 0, kWhat));
  RELIVE_ASSIGN_OR_RETURN(r.confirm_ms, json_field_or(j, "confirm_ms", 0.0, kWhat));
  return r;
}

Result<VerifyReply> parse_verify_reply(std::string_view text) {
  constexpr std::string_view kWhat = "the destination's verify reply";
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json j, parse_json_object(text, kWhat));
  VerifyReply r;
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json list, json_field<nlohmann::json>(j, "differing", kWhat));
  if (!list.is_array())
    return Status::Corruption(std::string(kWhat) + ": 'differing' is not a list");
  for (const nlohmann::json& range : list) {
    criu::VaddrRange v;
    RELIVE_ASSIGN_OR_RETURN(v.start, json_element<uint64_t>(range, 0, kWhat));
    RELIVE_ASSIGN_OR_RETURN(v.pages, json_element<uint64_t>(range, 1, kWhat));
    if (range.size() != 2 || v.pages > (UINT64_MAX - v.start) / criu::kImagePageSize)
      return Status::Corruption(std::string(kWhat) + ": not a page range: " + range.dump());
    r.differing.push_back(v);
  }
  RELIVE_ASSIGN_OR_RETURN(r.replayed_events,
                          json_field_or(j, "replayed_events", uint64_t{0}, kWhat));
  return r;
}

Result<VmBeginReply> parse_vm_begin_reply(std::string_view text) {
  constexpr std::string_view kWhat = "the VM destination's reply to begin";
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json j, parse_json_object(text, kWhat));
  VmBeginReply r;
  RELIVE_ASSIGN_OR_RETURN(r.port, json_field<uint16_t>(j, "port", kWhat));
  if (r.port == 0) return Status::Corruption(std::string(kWhat) + ": port 0");
  RELIVE_ASSIGN_OR_RETURN(r.pid, json_field_or(j, "pid", 0, kWhat));
  RELIVE_ASSIGN_OR_RETURN(r.dir, json_field_or(j, "dir", std::string(), kWhat));
  return r;
}

Result<uint16_t> qemu_listening_port(const nlohmann::json& query_migrate) {
  constexpr std::string_view kWhat = "QEMU's query-migrate";
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json addrs,
                          json_field<nlohmann::json>(query_migrate, "socket-address", kWhat));
  if (!addrs.is_array()) return Status::Corruption(std::string(kWhat) + ": no address list");
  for (const nlohmann::json& a : addrs) {
    Result<std::string> text = json_field<std::string>(a, "port", kWhat);
    uint16_t port = 0;
    if (text.ok()) {
      auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), port);
      if (ec != std::errc() || end != text->data() + text->size()) port = 0;
    } else if (Result<uint16_t> n = json_field<uint16_t>(a, "port", kWhat); n.ok()) {
      port = *n;
    }
    if (port != 0) return port;
  }
  return Status::Corruption(std::string(kWhat) + ": no listening port");
}

}  // namespace relive::migrate
