#include "security/protocol_stream.h"

#include <fmt/format.h>

namespace relive::security {

Result<uint64_t> ProtocolStream::send(protocol::MessageBody body) {
  if (!error_.ok()) return error_;
  protocol::Message m{next_send_, std::move(body)};
  Status s = send_protocol_message(*channel_, m);
  if (!s.ok()) return error_ = s;
  return next_send_++;
}

Result<protocol::Message> ProtocolStream::recv() {
  if (!error_.ok()) return error_;
  Result<protocol::Message> m = recv_protocol_message(*channel_);
  if (!m.ok()) return error_ = m.status();
  if (m->sequence != next_recv_) {
    return error_ = Status::Corruption(
               fmt::format("message from {} out of order: sequence {}, expected {}",
                           channel_->peer().address, m->sequence, next_recv_));
  }
  ++next_recv_;
  return m;
}

}  // namespace relive::security
