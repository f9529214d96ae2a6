#include "common/hash.h"

#include <xxhash.h>

#include <cstdio>
#include <cstdlib>

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

StreamHash128::StreamHash128() : state_(XXH3_createState()) {
  if (state_ == nullptr) std::abort();  // out of memory: nothing sensible follows
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}
StreamHash128::~StreamHash128() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void StreamHash128::update(std::string_view b) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), b.data(), b.size());
}
std::string StreamHash128::hex() const {
  XXH128_hash_t h = XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_));
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

}  // namespace relive
