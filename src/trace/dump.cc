#include "trace/dump.h"

#include <fmt/format.h>

#include <cerrno>

#include "trace/event_format.h"
#include "trace/trace_reader.h"

namespace relive::trace {
namespace {

void print_header(const TraceHeader& h, bool json, std::FILE* out) {
  if (json) {
    fmt::print(out, "{}\n", header_json(h));
  } else {
    fmt::print(out, "{}", header_text(h));
  }
}

void print_event(uint64_t index, const Event& e, bool json, std::FILE* out) {
  fmt::print(out, "{}\n", json ? event_json(index, e) : event_text(index, e));
}

// Prints events until the end of the log or the first error.
Status print_events(TraceReader& reader, bool json, std::FILE* out) {
  for (;;) {
    uint64_t index = reader.events_read();
    RELIVE_ASSIGN_OR_RETURN(std::optional<Event> event, reader.next());
    if (!event) return Status::Ok();
    print_event(index, *event, json, out);
  }
}

}  // namespace

Status dump_trace(const std::string& dir, bool json, std::FILE* out) {
  RELIVE_ASSIGN_OR_RETURN(TraceReader reader, TraceReader::open(dir));
  print_header(reader.header(), json, out);
  Status status = print_events(reader, json, out);
  // A failed write (a closed pipe, a full disk) is reported once, after the fact.
  if (std::fflush(out) != 0 || std::ferror(out)) {
    Status write_error = PosixError("writing the dump", errno);
    if (status.ok()) return write_error;
  }
  return status;
}

}  // namespace relive::trace
