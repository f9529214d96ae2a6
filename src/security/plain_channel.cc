#include "security/plain_channel.h"

namespace relive::security {

using transport::Deadline;

Status PlainChannel::write_bytes(std::string_view data, Deadline deadline) {
  return transport::send_all(fd_.get(), data, deadline);
}

Status PlainChannel::read_bytes(char* buf, size_t len, Deadline deadline) {
  return transport::recv_exact(fd_.get(), buf, len, deadline);
}

// A TLS record starts with content type 0x16 (handshake) and major version 3.
Status PlainChannel::bad_header(std::string_view header, Status parse_error) {
  if (header.size() >= 2 && header[0] == 0x16 && header[1] == 0x03) {
    return Status::Aborted(
        "peer speaks TLS but this channel is in insecure (plaintext) mode; both ends must "
        "choose the same mode");
  }
  return parse_error;
}

}  // namespace relive::security
