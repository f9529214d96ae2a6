// The plain C++ form of a container archive's manifest (schemas/archive.capnp describes the
// format; src/wire/archive_codec converts). Free of Cap'n Proto, so that src/container/ and the
// layers above it use it without seeing the encoding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace relive::container {

inline constexpr uint32_t kArchiveFormatVersion = 1;
inline constexpr uint32_t kArchiveChunkBytes = 1u << 20;

enum class EntryKind { kCriuImage, kFsChange };

struct ArchiveEntry {
  std::string name;
  uint64_t size = 0;
  std::string checksum;  // XXH3-128, 32 lowercase hex digits
  EntryKind kind = EntryKind::kCriuImage;
  bool operator==(const ArchiveEntry&) const = default;
};

struct ProcessInfo {
  int32_t pid = 0;
  int32_t ppid = 0;
  int32_t pgid = 0;
  int32_t sid = 0;
  uint32_t threads = 0;
  std::string comm;
  bool operator==(const ProcessInfo&) const = default;
};

// Microseconds; -1 when CRIU did not report the value.
struct DumpStats {
  int64_t freezing_us = -1;
  int64_t frozen_us = -1;
  int64_t memdump_us = -1;
  int64_t memwrite_us = -1;
  uint64_t pages_scanned = 0;
  uint64_t pages_written = 0;
  bool operator==(const DumpStats&) const = default;
};

struct Manifest {
  uint32_t format_version = kArchiveFormatVersion;  // on decoding: the version of the file
  std::string source_host;
  std::string kernel;
  std::string criu_version;
  uint64_t created_realtime_ns = 0;
  std::string relive_version;
  int32_t root_pid = 0;
  std::vector<ProcessInfo> processes;
  std::vector<ArchiveEntry> entries;
  DumpStats stats;
  bool tcp_established = false;
  std::string fs_note;
  bool operator==(const Manifest&) const = default;
};

}  // namespace relive::container
