// Status: the outcome of an operation that can fail for expected reasons (bad input, a missing
// file, a refused peer). Bugs are not Statuses; they are RELIVE_CHECK failures.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace relive {

class Status {
 public:
  enum class Code {
    kOk,
    kInvalidArgument,  // the caller asked for something malformed
    kNotFound,         // a file, process or peer that should exist does not
    kCorruption,       // bytes that do not decode: truncated, flipped, wrong magic
    kUnsupported,      // something relive cannot guarantee to handle (e.g. io_uring)
    kIoError,          // a system call failed
    kDivergence,       // replay left the recorded path
    kVersionMismatch,  // a format or protocol from another relive version
    kAborted,          // stopped on purpose (signal, peer gone)
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status Divergence(std::string m) { return {Code::kDivergence, std::move(m)}; }
  static Status VersionMismatch(std::string m) { return {Code::kVersionMismatch, std::move(m)}; }
  static Status Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
  // A status whose code arrived as a number (from a peer): unknown numbers become kIoError,
  // and kOk becomes kIoError too, since the peer meant a failure.
  static Status FromCode(uint32_t code, std::string m) {
    if (code == 0 || code > static_cast<uint32_t>(Code::kAborted)) code = 5;  // kIoError
    return {static_cast<Code>(code), std::move(m)};
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool is_corruption() const { return code_ == Code::kCorruption; }
  bool is_unsupported() const { return code_ == Code::kUnsupported; }
  bool is_divergence() const { return code_ == Code::kDivergence; }

  // "corruption: segment 3 checksum mismatch"
  std::string to_string() const;
  // Returns a Status of the same code whose message is prefixed by `context: `.
  Status with_context(std::string_view context) const;

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Status::IoError("context: strerror(err)").
Status PosixError(std::string_view context, int err);

}  // namespace relive

// Returns early from the enclosing function when `expr` is not ok.
#define RELIVE_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::relive::Status relive_status_ = (expr);        \
    if (!relive_status_.ok()) return relive_status_; \
  } while (0)
