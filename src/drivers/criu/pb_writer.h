// Just enough protobuf wire-format encoding to write the CRIU images relive rebuilds (pagemap),
// the counterpart of pb_reader.h. Internal to the CRIU driver.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace relive::criu::pb {

inline void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A varint field (wire type 0): uint32, uint64, bool, enum.
inline void put_uint(std::string* out, uint32_t field, uint64_t v) {
  put_varint(out, uint64_t{field} << 3);
  put_varint(out, v);
}

// A length-delimited field (wire type 2): bytes, string, embedded message.
inline void put_bytes(std::string* out, uint32_t field, std::string_view bytes) {
  put_varint(out, (uint64_t{field} << 3) | 2);
  put_varint(out, bytes.size());
  out->append(bytes);
}

// CRIU images are little-endian, as is x86-64.
inline void put_le32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// One image object: its length as u32, then the message.
inline void put_object(std::string* out, std::string_view message) {
  put_le32(out, static_cast<uint32_t>(message.size()));
  out->append(message);
}

}  // namespace relive::criu::pb
