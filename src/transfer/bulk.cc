#include "transfer/bulk.h"

#include <cstring>

#include "wire/segment.h"

namespace relive::transfer {

Status BulkSender::add(std::string_view event) {
  if (raw_.size() + event.size() + wire::kEventLengthBytes > kBatchBytes && count_ > 0) {
    RELIVE_RETURN_IF_ERROR(flush());
  }
  wire::append_event_to_payload(&raw_, event);
  ++count_;
  raw_bytes_ += event.size();
  return Status::Ok();
}

Status BulkSender::flush() {
  if (count_ == 0) return Status::Ok();
  std::string frame = wire::encode_segment_payload(seq_++, count_, raw_);
  raw_.clear();
  count_ = 0;
  wire_bytes_ += frame.size();
  return channel_->send_raw(frame);
}

Result<std::vector<std::string>> BulkReceiver::next() {
  // One decoder per segment keeps memory bounded; the sequence check spans segments.
  wire::SegmentDecoder decoder(seq_);
  std::string buf;
  for (size_t want = decoder.bytes_wanted(); want > 0; want = decoder.bytes_wanted()) {
    if (want > wire::kSegmentHeaderBytes + wire::kMaxSegmentCompressedBytes) {
      return Status::Corruption("bulk segment announces an absurd length");
    }
    buf.resize(want);
    RELIVE_RETURN_IF_ERROR(channel_->recv_raw(buf.data(), want));
    wire_bytes_ += want;
    decoder.feed(buf);
  }
  RELIVE_ASSIGN_OR_RETURN(auto events, decoder.next());
  if (!events) return Status::Corruption("bulk segment incomplete");
  ++seq_;
  return std::move(*events);
}

std::string event_header(uint32_t a, uint32_t b) {
  std::string h(8, '\0');
  std::memcpy(h.data(), &a, 4);
  std::memcpy(h.data() + 4, &b, 4);
  return h;
}

uint32_t event_u32(std::string_view event, size_t at) {
  uint32_t v = 0;
  std::memcpy(&v, event.data() + at, 4);
  return v;
}

uint64_t event_u64(std::string_view event, size_t at) {
  uint64_t v = 0;
  std::memcpy(&v, event.data() + at, 8);
  return v;
}

void append_u64(std::string* out, uint64_t v) { out->append(reinterpret_cast<char*>(&v), 8); }

}  // namespace relive::transfer
