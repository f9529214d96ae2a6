// The answers a migration reads from another host or process: the destination's replies to the
// source's commands (JSON text from another host) and QEMU's. Each is parsed here into a
// struct, and anything malformed (not JSON, a field of the wrong type, a number out of range)
// is a Status::Corruption, never an exception. A field that may be left out reads as its
// default.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/criu/page_image.h"
#include "relive/result.h"

namespace relive::migrate {

// The answer to a restore or a commit (Session::default_detail at the destination).
struct CommandReply {
  double restore_ms = 0;
  int root_pid = 0;
  double confirm_ms = 0;
};
Result<CommandReply> parse_command_reply(std::string_view text);

// CR/TR's verify: the pages the replay did not reproduce ([start, pages] pairs).
struct VerifyReply {
  std::vector<criu::VaddrRange> differing;
  uint64_t replayed_events = 0;
};
Result<VerifyReply> parse_verify_reply(std::string_view text);

// A VM destination's answer to migrate.begin: where its QEMU listens.
struct VmBeginReply {
  uint16_t port = 0;  // never 0 in a parsed reply
  int pid = 0;
  std::string dir;
};
Result<VmBeginReply> parse_vm_begin_reply(std::string_view text);

// The port an incoming QEMU listens on, from its query-migrate answer ("socket-address": a list
// of {"port": "4444", ...}; QEMU writes the port as a string).
Result<uint16_t> qemu_listening_port(const nlohmann::json& query_migrate);

}  // namespace relive::migrate
