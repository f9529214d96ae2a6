// Content hashes (xxHash). Not cryptographic: they detect corruption and deduplicate files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace relive {

uint64_t hash64(std::string_view data);
uint32_t hash32(std::string_view data);
// 32 hex digits of XXH3-128, used to name content-addressed files.
std::string hash128_hex(std::string_view data);

// XXH3-128 of a stream fed in pieces; hex() gives the same digits as hash128_hex() of the
// whole.
class StreamHash128 {
 public:
  StreamHash128();
  ~StreamHash128();
  StreamHash128(const StreamHash128&) = delete;
  StreamHash128& operator=(const StreamHash128&) = delete;
  void update(std::string_view bytes);
  std::string hex() const;

 private:
  void* state_;  // XXH3_state_t, kept out of this header
};

}  // namespace relive
