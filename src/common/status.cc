#include "relive/status.h"

#include <cstring>
#include <string>

namespace relive {
namespace {

const char* code_name(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return "ok";
    case Status::Code::kInvalidArgument:
      return "invalid argument";
    case Status::Code::kNotFound:
      return "not found";
    case Status::Code::kCorruption:
      return "corruption";
    case Status::Code::kUnsupported:
      return "unsupported";
    case Status::Code::kIoError:
      return "I/O error";
    case Status::Code::kDivergence:
      return "divergence";
    case Status::Code::kVersionMismatch:
      return "version mismatch";
    case Status::Code::kAborted:
      return "aborted";
  }
  return "unknown";
}

}  // namespace

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(code_name(code_)) + ": " + message_;
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

Status PosixError(std::string_view context, int err) {
  return Status::IoError(std::string(context) + ": " + std::strerror(err));
}

}  // namespace relive
