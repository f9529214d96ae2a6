// Human- and machine-readable renderings of trace headers and events, one place for
// `relive dump` and for messages that quote an event (e.g. a replay divergence report).
#pragma once

#include <cstdint>
#include <string>

#include "wire/trace_types.h"

namespace relive::trace {

// "key: value" lines, each ending in '\n'; argv and env are shell-quoted and space-joined.
std::string header_text(const TraceHeader& h);
// One JSON object, {"header":{...}}, without a trailing newline.
std::string header_json(const TraceHeader& h);

// One line without newline, e.g.
//   #12 tid 4711 syscall read(3, 0x7ffd5a0c, 4096) = 17 [emulated] writes 1 (17 bytes)
std::string event_text(uint64_t index, const Event& e);
// One JSON object without newline, e.g.
//   {"index":12,"type":"syscall","tid":4711,"nr":0,"name":"read","args":[...],...}
std::string event_json(uint64_t index, const Event& e);

// "SIGINT", "SIGRTMIN+3", or "signal 99".
std::string signal_name(int signo);
// "exit status 0", "killed by SIGSEGV (core dumped)".
std::string wait_status_text(int status);

}  // namespace relive::trace
