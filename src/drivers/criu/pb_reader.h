// Just enough protobuf wire-format decoding for the few CRIU images relive reads (stats,
// pagemap, core), so that relive does not depend on protobuf. Internal to the CRIU driver.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace relive::criu::pb {

// A cursor over protobuf wire format: every read is bounds-checked
// and returns false on truncated or malformed input.
class PbReader {
 public:
  explicit PbReader(std::string_view in) : in_(in) {}
  bool done() const { return in_.empty(); }

  bool varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && !in_.empty(); shift += 7) {
      auto byte = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      *v |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool key(uint32_t* number, uint32_t* wire_type) {
    uint64_t k;
    if (!varint(&k) || (k >> 3) == 0 || (k >> 3) > UINT32_MAX) return false;
    *number = static_cast<uint32_t>(k >> 3);
    *wire_type = static_cast<uint32_t>(k & 7);
    return true;
  }
  bool bytes(std::string_view* out) {
    uint64_t len;
    if (!varint(&len) || len > in_.size()) return false;
    *out = in_.substr(0, len);
    in_.remove_prefix(len);
    return true;
  }
  bool skip_fixed(size_t n) {
    if (n > in_.size()) return false;
    in_.remove_prefix(n);
    return true;
  }

 private:
  std::string_view in_;
};

// Calls on_varint(field, value) and on_bytes(field, bytes) for each field of one message;
// fields of other wire types are skipped. False when the message does not decode.
template <typename OnVarint, typename OnBytes>
bool walk(std::string_view message, OnVarint on_varint, OnBytes on_bytes) {
  PbReader r(message);
  while (!r.done()) {
    uint32_t field, type;
    uint64_t v;
    std::string_view b;
    if (!r.key(&field, &type)) return false;
    bool ok = false;
    switch (type) {
      case 0:
        ok = r.varint(&v);
        if (ok) on_varint(field, v);
        break;
      case 1:
        ok = r.skip_fixed(8);
        break;
      case 2:
        ok = r.bytes(&b) && on_bytes(field, b);
        break;
      case 5:
        ok = r.skip_fixed(4);
        break;
      default:
        break;  // groups (3, 4) and invalid types: CRIU writes neither
    }
    if (!ok) return false;
  }
  return true;
}

// CRIU images are little-endian, as is x86-64.
inline uint32_t le32(std::string_view s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, sizeof v);
  return v;
}

// Splits the next image object (u32 length, then the message) off the front of `*rest`; false
// when the image ends inside it.
inline bool next_object(std::string_view* rest, std::string_view* object) {
  if (rest->size() < 4 || le32(*rest, 0) > rest->size() - 4) return false;
  *object = rest->substr(4, le32(*rest, 0));
  rest->remove_prefix(4 + object->size());
  return true;
}

}  // namespace relive::criu::pb
