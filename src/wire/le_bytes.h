// Little-endian integer packing for the fixed headers of relive's file and frame formats.
// Internal to src/wire/. Written byte by byte so that the format does not depend on the host's
// byte order or on the alignment of the buffer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace relive::wire {

inline void put_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_u16(std::string* out, uint16_t v) { put_le(out, v, 2); }
inline void put_u32(std::string* out, uint32_t v) { put_le(out, v, 4); }
inline void put_u64(std::string* out, uint64_t v) { put_le(out, v, 8); }

// Reads `bytes` bytes at `at`; the caller has checked that they are there.
inline uint64_t get_le(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  }
  return v;
}
inline uint16_t get_u16(std::string_view in, size_t at) {
  return static_cast<uint16_t>(get_le(in, at, 2));
}
inline uint32_t get_u32(std::string_view in, size_t at) {
  return static_cast<uint32_t>(get_le(in, at, 4));
}
inline uint64_t get_u64(std::string_view in, size_t at) { return get_le(in, at, 8); }

}  // namespace relive::wire
