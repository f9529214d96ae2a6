#include "common/hash.h"

#include <xxhash.h>

#include <cstdio>

namespace relive {

uint64_t hash64(std::string_view data) { return XXH3_64bits(data.data(), data.size()); }

uint32_t hash32(std::string_view data) { return XXH32(data.data(), data.size(), 0x52454c56u); }

std::string hash128_hex(std::string_view data) {
  XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

}  // namespace relive
