#include "trace/trace_writer.h"

#include <fmt/format.h>

#include "common/file_util.h"
#include "trace/trace_dir.h"
#include "wire/header_codec.h"

namespace relive::trace {

Status write_header(const std::string& dir, const TraceHeader& h) {
  std::string bytes = wire::encode_header(h);
  if (bytes.size() > wire::kHeaderPrefixBytes + wire::kMaxHeaderPayloadBytes) {
    return Status::InvalidArgument(
        fmt::format("trace header of {} bytes exceeds the format's limit", bytes.size()));
  }
  RELIVE_RETURN_IF_ERROR(make_dirs(dir));
  return write_file_atomic(header_path(dir), bytes);
}

}  // namespace relive::trace
