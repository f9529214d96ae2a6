#include "security/stream_channel.h"

#include "wire/protocol_codec.h"

namespace relive::security {

using transport::Deadline;

Status StreamChannel::fail(Status s) {
  error_ = s;
  return s;
}

Status StreamChannel::send_message(std::string_view frame) {
  if (!error_.ok()) return error_;
  if (!fd_.valid()) return Status::Aborted("channel is closed");
  Result<wire::ProtocolFrameHeader> h = wire::parse_frame_header(frame);
  if (!h.ok() || frame.size() != wire::kProtocolHeaderBytes + h->payload_length) {
    return Status::InvalidArgument("send_message needs exactly one well-formed frame");
  }
  Status s = write_bytes(frame, Deadline::after(timeout_));
  return s.ok() ? s : fail(s.with_context("send to " + peer_.address));
}

Status StreamChannel::bad_header(std::string_view header, Status parse_error) {
  return parse_error;
}

Result<std::string> StreamChannel::recv_message() {
  if (!error_.ok()) return error_;
  if (!fd_.valid()) return Status::Aborted("channel is closed");
  Deadline deadline = Deadline::after(timeout_);
  std::string frame(wire::kProtocolHeaderBytes, '\0');
  Status s = read_bytes(frame.data(), frame.size(), deadline);
  if (!s.ok()) return fail(s.with_context("receive from " + peer_.address));
  Result<wire::ProtocolFrameHeader> h = wire::parse_frame_header(frame);
  if (!h.ok()) {
    return fail(bad_header(frame, h.status()).with_context("frame from " + peer_.address));
  }
  frame.resize(wire::kProtocolHeaderBytes + h->payload_length);
  s = read_bytes(frame.data() + wire::kProtocolHeaderBytes, h->payload_length, deadline);
  if (!s.ok()) return fail(s.with_context("receive from " + peer_.address));
  return frame;
}

Status StreamChannel::send_raw(std::string_view bytes) {
  if (!error_.ok()) return error_;
  if (!fd_.valid()) return Status::Aborted("channel is closed");
  Status s = write_bytes(bytes, Deadline::after(timeout_));
  return s.ok() ? s : fail(s.with_context("send to " + peer_.address));
}

Status StreamChannel::recv_raw(char* buf, size_t len) {
  if (!error_.ok()) return error_;
  if (!fd_.valid()) return Status::Aborted("channel is closed");
  Status s = read_bytes(buf, len, Deadline::after(timeout_));
  return s.ok() ? s : fail(s.with_context("receive from " + peer_.address));
}

}  // namespace relive::security
