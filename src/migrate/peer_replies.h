// The answers a migration reads from another host or process: the destination's typed replies
// to the source's commands (migration::Reply, decoded by wire/) checked for the kind and ranges
// each command expects, and QEMU's JSON. Anything malformed is a Status::Corruption, never an
// exception.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/criu/page_image.h"
#include "relive/result.h"
#include "wire/migration_types.h"

namespace relive::migrate {

// The destination's typed reply of kind T (wire/migration_types.h).
using migration::reply_as;

// CR/TR's verify: the pages the replay did not reproduce, checked to be page ranges.
struct VerifyReply {
  std::vector<criu::VaddrRange> differing;
  uint64_t replayed_events = 0;
};
Result<VerifyReply> verify_reply(const migration::Reply& reply);

// A VM destination's answer to migrate.begin: where its QEMU listens (never port 0).
Result<migration::VmBeginReply> vm_begin_reply(const migration::Reply& reply);

// The port an incoming QEMU listens on, from its query-migrate answer ("socket-address": a list
// of {"port": "4444", ...}; QEMU writes the port as a string).
Result<uint16_t> qemu_listening_port(const nlohmann::json& query_migrate);

}  // namespace relive::migrate
