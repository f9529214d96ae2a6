// Converts trace events (src/wire/trace_types.h) to and from their encoding in the event log: one
// self-contained Cap'n Proto message per event, root Event in schemas/trace.capnp.
#pragma once

#include <string>
#include <string_view>

#include "relive/result.h"
#include "wire/trace_types.h"

namespace relive::wire {

// The flat-array message (segment table included) for `e`. MemWrite data and the siginfo are
// carried as Data fields. A single Data field is limited to 512 MiB by Cap'n Proto; larger
// memory writes are a bug in the caller (RELIVE_CHECK).
std::string encode_event(const trace::Event& e);

// Decodes one message produced by encode_event. Never throws and never crashes on any input:
// malformed messages, unknown event kinds or enum values, a syscall without exactly 6
// arguments and siginfo longer than 128 bytes are all Corruption.
Result<trace::Event> decode_event(std::string_view bytes);

}  // namespace relive::wire
