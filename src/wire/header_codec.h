// Converts the trace header (trace::TraceHeader) to and from the bytes of a trace directory's
// `header` file: magic "RLVTRACE", u32 format version, u32 payload length, u32 xxhash32 of the
// payload, then one Cap'n Proto message whose root is TraceHeader (schemas/trace.capnp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "relive/result.h"
#include "wire/trace_types.h"

namespace relive::wire {

inline constexpr std::string_view kHeaderMagic = "RLVTRACE";
// magic + version + payload length + payload checksum.
inline constexpr size_t kHeaderPrefixBytes = 20;
// A header holds paths, argv and the environment; anything larger is not a header.
inline constexpr size_t kMaxHeaderPayloadBytes = 16u << 20;

// The whole file. The version written is always trace::kFormatVersion; `h.version` is not
// consulted (it reports, on decoding, the version the file was written with).
std::string encode_header(const trace::TraceHeader& h);

// Decodes a whole header file. Wrong magic -> Corruption("not a relive trace: bad magic");
// a version newer than trace::kFormatVersion -> VersionMismatch naming both versions; a length
// that disagrees with the file, an absurd length or a checksum mismatch -> Corruption.
// The version is checked before the checksum so that a header from a newer relive is reported
// as such even if its layout changed.
Result<trace::TraceHeader> decode_header(std::string_view file_bytes);

}  // namespace relive::wire
