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

}  // namespace relive
