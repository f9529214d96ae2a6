// Converts migration commands (src/wire/migration_types.h) to and from the bytes of a protocol
// Request's body (schemas/migration.capnp). The bytes come from the network: decoding bounds
// every size and turns any malformed input into Corruption.
#pragma once

#include <string>
#include <string_view>

#include "relive/result.h"
#include "wire/migration_types.h"

namespace relive::wire {

std::string encode_migration_command(const migration::Command& command);

// Decodes a body and checks it against the Request's command name: Corruption when they
// disagree (a body cannot be smuggled under another command's name).
Result<migration::Command> decode_migration_command(std::string_view command_name,
                                                    std::string_view body);

// A reply as the bytes of an Ack's `reply` (a monostate reply is empty bytes).
std::string encode_migration_reply(const migration::Reply& reply);

// Empty bytes decode to a monostate reply; anything malformed is Corruption.
Result<migration::Reply> decode_migration_reply(std::string_view bytes);

}  // namespace relive::wire
