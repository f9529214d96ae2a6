// The fixed parts of a container archive (schemas/archive.capnp, header comment): the header,
// the Cap'n Proto manifest, the chunk frames' headers and the trailer. Pure functions on bytes;
// src/wire/archive_reader.h streams a whole archive through them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relive/result.h"
#include "wire/archive_types.h"

namespace relive::wire {

inline constexpr std::string_view kArchiveMagic{"RLVCTAR\0", 8};
inline constexpr std::string_view kArchiveTrailerMagic = "RLVCTEND";
inline constexpr uint32_t kArchiveFrameMagic = 0x46434c52;  // the bytes "RLCF", little-endian
inline constexpr size_t kArchiveHeaderBytes = 32;
inline constexpr size_t kArchiveFrameHeaderBytes = 28;
inline constexpr size_t kArchiveTrailerBytes = 28;
inline constexpr uint32_t kMaxManifestBytes = 16u << 20;
// Bounds on what a manifest may claim, far above any real dump, so that no count or sum taken
// from it can overflow or make a reader reserve absurd memory.
inline constexpr size_t kMaxArchiveEntries = 1u << 16;
inline constexpr size_t kMaxArchiveProcesses = 1u << 16;
inline constexpr uint64_t kMaxEntryBytes = uint64_t{1} << 40;
inline constexpr size_t kMaxEntryNameBytes = 255;

struct ArchiveHeader {
  uint32_t version = 0;
  uint32_t manifest_length = 0;
  uint64_t manifest_hash = 0;  // XXH3-64
};

struct ArchiveFrameHeader {
  uint32_t entry = 0;
  uint32_t chunk = 0;
  uint32_t raw_length = 0;
  uint32_t compressed_length = 0;
  uint32_t payload_hash = 0;
};

struct ArchiveTrailer {
  uint64_t data_length = 0;
  uint64_t manifest_hash = 0;
};

// The Cap'n Proto manifest alone. The version written is always kArchiveFormatVersion.
std::string encode_manifest(const container::Manifest& m);
// Decodes and validates a manifest (entry names, checksums, sizes and counts within the bounds
// above). Corruption on anything malformed. format_version is the manifest's own field, which
// ArchiveReader checks against the header's.
Result<container::Manifest> decode_manifest(std::string_view bytes);

// Header plus manifest: everything before the first frame.
std::string encode_archive_prefix(const container::Manifest& m);
// Checks the 32 header bytes. Wrong magic -> Corruption("not a relive container archive ...");
// a version newer than ours -> VersionMismatch, reported before the header checksum so that an
// archive from a newer relive is named as such even if its header layout changed.
Result<ArchiveHeader> parse_archive_header(std::string_view header);

// One frame: header plus the LZ4 block of `raw` (at most kArchiveChunkBytes).
std::string encode_frame(uint32_t entry, uint32_t chunk, std::string_view raw);
// Checks the 28 frame-header bytes against what the reader expects next: entry, chunk and exact
// raw length; bounds the compressed length before anything is allocated for it.
Result<ArchiveFrameHeader> parse_frame_header(std::string_view header, uint32_t entry,
                                              uint32_t chunk, uint32_t raw_length);
// Verifies a frame's payload checksum and decompresses it into `raw` (resized to the length).
Status decode_frame_payload(const ArchiveFrameHeader& h, std::string_view compressed,
                            std::string* raw);

std::string encode_trailer(const ArchiveTrailer& t);
Result<ArchiveTrailer> parse_trailer(std::string_view trailer);

}  // namespace relive::wire
