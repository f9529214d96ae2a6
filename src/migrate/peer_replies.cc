#include "migrate/peer_replies.h"

#include <charconv>

#include "common/json_field.h"

namespace relive::migrate {

Result<VerifyReply> verify_reply(const migration::Reply& reply) {
  constexpr std::string_view kWhat = "the destination's verify reply";
  RELIVE_ASSIGN_OR_RETURN(migration::VerifyReply v, reply_as<migration::VerifyReply>(reply, kWhat));
  VerifyReply r;
  for (const migration::PageRange& range : v.differing) {
    if (range.pages > (UINT64_MAX - range.start) / criu::kImagePageSize) {
      return Status::Corruption(std::string(kWhat) + ": not a page range: " +
                                std::to_string(range.start) + "+" + std::to_string(range.pages));
    }
    r.differing.push_back({range.start, range.pages});
  }
  r.replayed_events = v.replayed_events;
  return r;
}

Result<migration::VmBeginReply> vm_begin_reply(const migration::Reply& reply) {
  constexpr std::string_view kWhat = "the VM destination's reply to begin";
  RELIVE_ASSIGN_OR_RETURN(migration::VmBeginReply r,
                          reply_as<migration::VmBeginReply>(reply, kWhat));
  if (r.port == 0) return Status::Corruption(std::string(kWhat) + ": port 0");
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
